// Where things live in the bucket. With prefix P (may be empty):
//
//   P/<key>                          committed objects, exactly the driver's keys
//   P/~uploads/<key>/~seg-<offset>-<rand>   tail bytes of the in-progress object at <key> not yet part
//                                    of a multipart part
//
// The state of an in-progress object (multipart upload id, finished parts, tail segments) is not kept
// here: it is the checkpoint its owner, the upload session, stores in metadata.
//
// '~' is outside the key alphabet, so in-progress data can never collide with or be listed as a
// committed key, and one lifecycle rule on `P/~uploads/` can expire what crashes leave behind.
import { randomBytes } from 'node:crypto';

const UPLOADS = '~uploads';
const SEGMENT = '~seg-';

export class S3Keys {
  private readonly root: string;

  constructor(prefix: string) {
    this.root = prefix === '' ? '' : `${prefix}/`;
  }

  /** The S3 key of a committed object. */
  object(key: string): string {
    return `${this.root}${key}`;
  }

  /** The driver key for an S3 key listed under the root, or undefined for internal objects. */
  fromObject(s3Key: string): string | undefined {
    if (!s3Key.startsWith(this.root)) return undefined;
    const key = s3Key.slice(this.root.length);
    return key.includes('~') ? undefined : key;
  }

  /** List prefix for everything committed under `key/` (or the whole root for ''). */
  children(key: string): string {
    return key === '' ? this.root : `${this.root}${key}/`;
  }

  /** Everything in-progress, for the sweeper. */
  uploadsRoot(): string {
    return `${this.root}${UPLOADS}/`;
  }

  /** Directory of the in-progress object at `key`; in-progress objects under `key/` nest below it. */
  uploadDir(key: string): string {
    return `${this.root}${UPLOADS}/${key}/`;
  }

  /** A fresh segment key; the zero-padded offset keeps listings in write order. */
  segment(key: string, offset: number): string {
    return `${this.uploadDir(key)}${SEGMENT}${offset.toString().padStart(15, '0')}-${randomBytes(6).toString('hex')}`;
  }

  /** The upload directory an internal object belongs to. */
  static dirOf(s3Key: string): string {
    return s3Key.slice(0, s3Key.lastIndexOf('/') + 1);
  }

  /** The driver key of the in-progress object whose directory is `dir`. */
  keyOfUploadDir(dir: string): string {
    return dir.slice(this.uploadsRoot().length, -1);
  }
}
