import type { Readable } from 'node:stream';
import { BlobNotFoundError, type BlobDriver, type BlobSender } from '../../storage-drivers/blob/types.js';
import type { BlobLink, MetadataStore } from '../../storage-drivers/metadata/types.js';
import { OciError } from '../errors.js';
import { blobKey } from './keys.js';
import type { ParsedDigest } from './references.js';

/** Blob reads, deletes and mounts; one stored copy per digest, visibility per repository. */
export class BlobService {
  constructor(
    private readonly driver: BlobDriver,
    private readonly metadata: MetadataStore,
  ) {}

  /** The blob's link in `repo` (its size), or BLOB_UNKNOWN. Answered from metadata alone. */
  async stat(repo: string, digest: ParsedDigest): Promise<BlobLink> {
    const link = await this.metadata.getBlobLink(repo, digest.value);
    if (!link) throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is not in repository ${repo}`);
    return link;
  }

  async open(digest: ParsedDigest, range?: { start: number; end: number }, signal?: AbortSignal): Promise<Readable> {
    return this.driver.reader(blobKey(digest), range ? { start: range.start, end: range.end, signal } : { signal });
  }

  /** The driver's fast sending path for this blob, if it has one. */
  async openSender(digest: ParsedDigest, range?: { start: number; end: number }): Promise<BlobSender | undefined> {
    return this.driver.openSender?.(blobKey(digest), range ? { start: range.start, end: range.end } : {});
  }

  /** A small blob's bytes in one read. */
  async read(digest: ParsedDigest): Promise<Buffer> {
    return this.driver.get(blobKey(digest));
  }

  async redirectUrl(digest: ParsedDigest): Promise<string | undefined> {
    return this.driver.redirectUrl?.(blobKey(digest));
  }

  /** Removes the blob from `repo`; the stored bytes stay for other repositories. */
  async unlink(repo: string, digest: ParsedDigest): Promise<void> {
    if (!(await this.metadata.unlinkBlob(repo, digest.value))) throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is not in repository ${repo}`);
  }

  /**
   * Links a blob from `from` (or, without `from`, from any repository `mayRead` accepts) into `repo`.
   * Returns the link, or undefined when no permitted source holds it.
   */
  async mount(repo: string, digest: ParsedDigest, from: string | undefined, mayRead: (source: string) => Promise<boolean>): Promise<BlobLink | undefined> {
    const sources = from !== undefined ? [from] : await this.metadata.blobRepositories(digest.value, 50);
    for (const source of sources) {
      if (source === repo) continue;
      const link = await this.metadata.getBlobLink(source, digest.value);
      if (!link || !(await mayRead(source))) continue;
      // The bytes must really be there: a mount never makes a repository point at nothing.
      try {
        await this.driver.stat(blobKey(digest));
      } catch (err) {
        if (err instanceof BlobNotFoundError) continue;
        throw err;
      }
      await this.metadata.linkBlob(repo, link);
      return link;
    }
    const existing = await this.metadata.getBlobLink(repo, digest.value);
    return existing;
  }
}
