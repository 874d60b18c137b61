import { BlobNotFoundError, type BlobDriver } from '../../storage-drivers/blob/types.js';
import type { BlobLink, ManifestRecord, MetadataStore } from '../../storage-drivers/metadata/types.js';
import { digestOfJournalPath, JOURNAL_ROOT, parseJournalKey } from './keys.js';
import { queueStored } from './gc/full-mark.js';
import { parseDigest } from './references.js';
import { recountNamespaces } from './quotas/recount.js';

export interface RebuildProgress {
  repositories: number;
  blobs: number;
  manifests: number;
  tags: number;
}

/** A journal entry that could not be restored: its storage key and why. */
export interface BadJournalEntry {
  key: string;
  reason: string;
}

export interface RebuildResult extends RebuildProgress {
  /** Entries skipped because they are unreadable or malformed; everything else was restored. */
  badEntries: BadJournalEntry[];
  /** Tags not restored because the manifest they point at has no (readable) journal entry. */
  skippedTags: Array<{ repository: string; tag: string; digest: string }>;
}

interface RepoJournal {
  blobs: BlobLink[];
  manifests: ManifestRecord[];
  tags: Map<string, string>;
}

/**
 * Recreates every blob link, manifest (with its referrer entry) and tag in `store` from the journal in
 * blob storage, then recounts every namespace's quota record from those links. Idempotent: running it
 * twice, or over a store that still holds some data, is safe.
 */
export async function rebuildMetadata(driver: BlobDriver, store: MetadataStore, onProgress?: (p: RebuildProgress) => void): Promise<RebuildResult> {
  const repos = new Map<string, RepoJournal>();
  const progress: RebuildProgress = { repositories: 0, blobs: 0, manifests: 0, tags: 0 };
  const badEntries: BadJournalEntry[] = [];
  const skippedTags: RebuildResult['skippedTags'] = [];
  const repoOf = (name: string) => {
    let r = repos.get(name);
    if (!r) repos.set(name, (r = { blobs: [], manifests: [], tags: new Map() }));
    return r;
  };
  for await (const key of driver.list(JOURNAL_ROOT)) {
    const entry = parseJournalKey(key);
    if (!entry) continue;
    const { repo, kind, rest } = entry;
    let data: Buffer;
    try {
      data = await driver.get(key);
    } catch (err) {
      // Removed since it was listed (a delete running meanwhile): nothing to restore.
      if (err instanceof BlobNotFoundError) continue;
      throw err;
    }
    // One damaged entry (a torn write, a disk error) must not cost every other one: it is named and
    // skipped. Storage failures above still abort, since then nothing read can be trusted complete.
    try {
      const r = repoOf(repo);
      if (kind === 'blobs') r.blobs.push(parseBlobLink(data, digestFromPath(rest)));
      else if (kind === 'manifests') r.manifests.push(parseManifestRecord(data, digestFromPath(rest)));
      else r.tags.set(rest, parseTagTarget(data));
    } catch (err) {
      badEntries.push({ key, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  for (const [repo, r] of [...repos].sort(([a], [b]) => (a < b ? -1 : 1))) {
    for (const link of r.blobs) {
      await store.linkBlob(repo, link);
      progress.blobs++;
    }
    const byDigest = new Map(r.manifests.map((m) => [m.digest, m]));
    const tagsOf = new Map<string, string[]>();
    for (const [tag, digest] of r.tags) {
      if (!byDigest.has(digest)) {
        skippedTags.push({ repository: repo, tag, digest });
        continue;
      }
      tagsOf.set(digest, [...(tagsOf.get(digest) ?? []), tag]);
    }
    for (const manifest of r.manifests) {
      const tags = tagsOf.get(manifest.digest) ?? [];
      await store.putManifest(repo, manifest, tags);
      progress.manifests++;
      progress.tags += tags.length;
    }
    progress.repositories++;
    onProgress?.({ ...progress });
  }
  // The namespace records follow from the links just restored (see docs/quotas.md).
  await recountNamespaces(store, repos);
  // Complete only when every journal entry was read: a manifest skipped as damaged would leave its
  // blobs looking unreferenced. Everything stored is queued, so orphans from before are collected.
  if (badEntries.length === 0) {
    await queueStored(driver, store, { manifests: false });
    await store.gc.markComplete(`rebuilt at ${new Date().toISOString()}`);
  }
  return { ...progress, badEntries, skippedTags };
}

class MalformedEntry extends Error {}

/** `sha256/<hex>` (the key's tail) back to `sha256:<hex>`; throws unless it is a valid digest. */
function digestFromPath(path: string): string {
  try {
    return parseDigest(digestOfJournalPath(path)).value;
  } catch {
    throw new MalformedEntry(`the key does not end in a digest (${JSON.stringify(path)})`);
  }
}

function parseJson(data: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new MalformedEntry(`not valid JSON (${(err as Error).message}; ${data.length} bytes)`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new MalformedEntry('not a JSON object');
  return value as Record<string, unknown>;
}

const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function parseBlobLink(data: Buffer, digest: string): BlobLink {
  const v = parseJson(data);
  if (v.digest !== digest) throw new MalformedEntry(`its digest ${JSON.stringify(v.digest)} is not the key's ${digest}`);
  if (!isSize(v.size)) throw new MalformedEntry('its size is not a non-negative integer');
  return { digest, size: v.size };
}

function parseManifestRecord(data: Buffer, digest: string): ManifestRecord {
  const v = parseJson(data);
  if (v.digest !== digest) throw new MalformedEntry(`its digest ${JSON.stringify(v.digest)} is not the key's ${digest}`);
  if (typeof v.mediaType !== 'string' || !isSize(v.size) || typeof v.createdAt !== 'number')
    throw new MalformedEntry('mediaType, size or createdAt is missing or of the wrong type');
  if (!Array.isArray(v.references) || !v.references.every((d) => typeof d === 'string')) throw new MalformedEntry('references is not a list of digests');
  if (v.subject !== undefined && typeof v.subject !== 'string') throw new MalformedEntry('subject is not a digest');
  return v as unknown as ManifestRecord;
}

function parseTagTarget(data: Buffer): string {
  const text = data.toString('utf8');
  try {
    return parseDigest(text).value;
  } catch {
    throw new MalformedEntry(`does not hold a digest (${JSON.stringify(text.slice(0, 80))})`);
  }
}
