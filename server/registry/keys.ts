import type { ParsedDigest } from './references.js';

/*
 * Storage key layout (all drivers), drawn here only: everything that builds or parses a key uses these.
 *   blobs/<alg>/<first two hex>/<hex>/data   verified, content-addressed bytes: layers, configs and
 *                                            manifests alike, shared by every repository (dedupe)
 *   uploads/<uuid>/data                      an upload's bytes while it is in progress; deleted (or
 *                                            moved to blobs/) when it ends
 *   journal/repositories/<repo>/_blobs/<alg>/<hex>       the metadata journal (server/registry/journal.ts):
 *   journal/repositories/<repo>/_manifests/<alg>/<hex>   {"digest","size"}, the ManifestRecord, the digest
 *   journal/repositories/<repo>/_tags/<tag>
 *   quarantine/<alg>/<hex>/<ms>-<reason>     bytes found corrupt, outside blobs/ so they are never served
 *   scrub/cursor                             where an interrupted scrub resumes
 *   fills/<alg>/<hex>/state                  a pull-through fill of the blob: its attempt, size and outcome
 *   fills/<alg>/<hex>/<attempt>/<index>      the fill's bytes so far, in fixed-size chunks any process reads
 * Which repository may see which blob lives in the metadata store, never in these keys. Repository
 * names never contain a component starting with '_', so the journal markers cannot collide with one.
 */

export const BLOBS_ROOT = 'blobs';
export const JOURNAL_ROOT = 'journal/repositories';
/** Outside `blobs/`, so a quarantined object is never served, scrubbed again or mistaken for a blob. */
export const QUARANTINE_ROOT = 'quarantine';
/** The scrub's cursor: in storage, next to what it walks, so any process can resume it. */
export const SCRUB_CURSOR_KEY = 'scrub/cursor';

/** Outside `blobs/`: a fill's bytes are unverified until the whole blob hashes right. */
export const FILLS_ROOT = 'fills';

export function fillDir(digest: ParsedDigest): string {
  return `${FILLS_ROOT}/${digest.algorithm}/${digest.hex}`;
}

export function fillStateKey(digest: ParsedDigest): string {
  return `${fillDir(digest)}/state`;
}

export function fillChunkKey(digest: ParsedDigest, attempt: string, index: number): string {
  return `${fillDir(digest)}/${attempt}/${index}`;
}

const FILL_KEY = /^fills\/(sha256|sha512)\/([0-9a-f]+)\//;

/** The `fills/<alg>/<hex>` directory `key` lies in, or undefined when `key` is no fill's. */
export function fillDirOfKey(key: string): string | undefined {
  const m = FILL_KEY.exec(key);
  return m ? `${FILLS_ROOT}/${m[1] as string}/${m[2] as string}` : undefined;
}

export function blobKey(digest: ParsedDigest): string {
  return `${BLOBS_ROOT}/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}/data`;
}

const BLOB_KEY = /^blobs\/(sha256|sha512)\/([0-9a-f]{2})\/([0-9a-f]+)\/data$/;

/** The algorithm and hex of the blob stored at `key`, or undefined when `key` is no blob's. */
export function parseBlobKey(key: string): { algorithm: string; hex: string } | undefined {
  const m = BLOB_KEY.exec(key);
  return m ? { algorithm: m[1] as string, hex: m[3] as string } : undefined;
}

export function uploadKey(id: string): string {
  return `uploads/${id}/data`;
}

/** The upload id whose bytes live at `key`, or undefined when `key` is no upload's. */
export function uploadIdOfKey(key: string): string | undefined {
  return /^uploads\/([^/]+)\/data$/.exec(key)?.[1];
}

export function uploadDir(id: string): string {
  return `uploads/${id}`;
}

function digestPath(digest: string): string {
  return digest.replace(':', '/');
}

export function journalBlobKey(repo: string, digest: string): string {
  return `${JOURNAL_ROOT}/${repo}/_blobs/${digestPath(digest)}`;
}

export function journalManifestKey(repo: string, digest: string): string {
  return `${JOURNAL_ROOT}/${repo}/_manifests/${digestPath(digest)}`;
}

export function journalTagKey(repo: string, tag: string): string {
  return `${JOURNAL_ROOT}/${repo}/_tags/${tag}`;
}

export type JournalKind = 'blobs' | 'manifests' | 'tags';

export interface JournalKey {
  repo: string;
  kind: JournalKind;
  /** The key's tail after the marker: `<alg>/<hex>` for blobs and manifests, the tag for tags. Not validated. */
  rest: string;
}

const JOURNAL_MARKER = /^(.+)\/_(blobs|manifests|tags)\/(.+)$/;

/** What the journal entry at `key` is about, or undefined when `key` is not shaped like one. */
export function parseJournalKey(key: string): JournalKey | undefined {
  if (!key.startsWith(`${JOURNAL_ROOT}/`)) return undefined;
  const m = JOURNAL_MARKER.exec(key.slice(JOURNAL_ROOT.length + 1));
  if (!m) return undefined;
  return { repo: m[1] as string, kind: m[2] as JournalKind, rest: m[3] as string };
}

const JOURNAL_DIGEST = /^(sha256|sha512)\/([0-9a-f]+)$/;

/** The algorithm and hex a blob or manifest journal key's tail names, or undefined when it names none. */
export function parseJournalDigestPath(rest: string): { algorithm: string; hex: string } | undefined {
  const m = JOURNAL_DIGEST.exec(rest);
  return m ? { algorithm: m[1] as string, hex: m[2] as string } : undefined;
}

/** A journal key's `<alg>/<hex>` tail back to `<alg>:<hex>` (not validated: parseDigest does that). */
export function digestOfJournalPath(rest: string): string {
  const slash = rest.indexOf('/');
  return slash === -1 ? rest : `${rest.slice(0, slash)}:${rest.slice(slash + 1)}`;
}

export function quarantineKey(digest: ParsedDigest, reason: string, now: number): string {
  return `${QUARANTINE_ROOT}/${digest.algorithm}/${digest.hex}/${now}-${reason}`;
}
