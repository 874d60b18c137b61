import { createHash, type Hash } from 'node:crypto';
import { OciError } from '../errors.js';

/** Repository names as the distribution spec's grammar allows, capped at 255 characters. */
const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST_SHAPE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+$/;
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const MAX_NAME_LENGTH = 255;

/** The digest algorithms Berth can verify, and the hex length of each. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `algorithm:hex` */
  value: string;
}

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

export function assertName(name: string): string {
  if (!isValidName(name)) {
    throw new OciError(
      'NAME_INVALID',
      `invalid repository name ${JSON.stringify(name.slice(0, 300))}: use lowercase letters, digits and separators (. _ __ -), components joined by '/', at most ${MAX_NAME_LENGTH} characters`,
    );
  }
  return name;
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

export function assertTag(tag: string): string {
  if (!isValidTag(tag)) {
    throw new OciError(
      'TAG_INVALID',
      `invalid tag ${JSON.stringify(tag.slice(0, 200))}: at most 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'`,
    );
  }
  return tag;
}

/** Parses `algorithm:hex`; throws DIGEST_INVALID for malformed or unsupported digests. */
export function parseDigest(value: string): ParsedDigest {
  if (typeof value !== 'string' || value.length > 200 || !DIGEST_SHAPE.test(value)) {
    throw new OciError('DIGEST_INVALID', `invalid digest ${JSON.stringify(String(value).slice(0, 200))}: expected algorithm:hex, e.g. sha256:<64 hex digits>`);
  }
  const colon = value.indexOf(':');
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (!(algorithm in DIGEST_ALGORITHMS)) {
    throw new OciError('DIGEST_INVALID', `unsupported digest algorithm ${JSON.stringify(algorithm)}: use sha256 or sha512`);
  }
  const alg = algorithm as DigestAlgorithm;
  if (hex.length !== DIGEST_ALGORITHMS[alg] || !/^[0-9a-f]+$/.test(hex)) {
    throw new OciError('DIGEST_INVALID', `invalid ${alg} digest: expected ${DIGEST_ALGORITHMS[alg]} lowercase hex digits`);
  }
  return { algorithm: alg, hex, value };
}

export function isDigest(reference: string): boolean {
  return reference.includes(':');
}

/** A manifest reference: a tag or a digest. */
export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: ParsedDigest };

export function parseReference(reference: string): Reference {
  if (isDigest(reference)) return { kind: 'digest', digest: parseDigest(reference) };
  if (!isValidTag(reference)) {
    throw new OciError(
      'TAG_INVALID',
      `invalid reference ${JSON.stringify(reference.slice(0, 200))}: expected a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) or a digest`,
    );
  }
  return { kind: 'tag', tag: reference };
}

export function assertUploadId(id: string): string {
  if (id === '')
    throw new OciError('BLOB_UPLOAD_UNKNOWN', 'no upload id in the URL: start an upload with POST /v2/<name>/blobs/uploads/ and use the Location it returns');
  if (!UPLOAD_ID.test(id))
    throw new OciError(
      'BLOB_UPLOAD_UNKNOWN',
      `upload ${JSON.stringify(id.slice(0, 100))} is unknown: upload ids are UUIDs issued by POST /v2/<name>/blobs/uploads/`,
    );
  return id;
}

export function newHash(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Buffer, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}
