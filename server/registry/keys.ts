import type { ParsedDigest } from './references.js';

/*
 * Storage key layout (all drivers):
 *   blobs/<alg>/<first two hex>/<hex>/data   verified, content-addressed bytes: layers, configs and
 *                                            manifests alike, shared by every repository (dedupe)
 *   uploads/<uuid>/data                      an upload's bytes while it is in progress; deleted (or
 *                                            moved to blobs/) when it ends
 *   journal/...                              the metadata journal (see server/registry/journal.ts)
 * Which repository may see which blob lives in the metadata store, never in these keys.
 */

export function blobKey(digest: ParsedDigest): string {
  return `blobs/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}/data`;
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
