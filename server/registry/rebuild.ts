import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import type { BlobLink, ManifestRecord, MetadataStore } from '../../storage-drivers/metadata/types.js';
import { JOURNAL_ROOT } from './journal.js';

export interface RebuildProgress {
  repositories: number;
  blobs: number;
  manifests: number;
  tags: number;
}

interface RepoJournal {
  blobs: BlobLink[];
  manifests: ManifestRecord[];
  tags: Map<string, string>;
}

const MARKER = /^(.+)\/_(blobs|manifests|tags)\/(.+)$/;

/**
 * Recreates every blob link, manifest (with its referrer entry) and tag in `store` from the journal in
 * blob storage. Idempotent: running it twice, or over a store that still holds some data, is safe.
 */
export async function rebuildMetadata(driver: BlobDriver, store: MetadataStore, onProgress?: (p: RebuildProgress) => void): Promise<RebuildProgress> {
  const repos = new Map<string, RepoJournal>();
  const progress: RebuildProgress = { repositories: 0, blobs: 0, manifests: 0, tags: 0 };
  const repoOf = (name: string) => {
    let r = repos.get(name);
    if (!r) repos.set(name, (r = { blobs: [], manifests: [], tags: new Map() }));
    return r;
  };
  for await (const key of driver.list(JOURNAL_ROOT)) {
    const m = MARKER.exec(key.slice(JOURNAL_ROOT.length + 1));
    if (!m) continue;
    const [, repo, kind, rest] = m as unknown as [string, string, string, string];
    const data = await driver.get(key);
    const r = repoOf(repo);
    if (kind === 'blobs') r.blobs.push(JSON.parse(data.toString('utf8')) as BlobLink);
    else if (kind === 'manifests') r.manifests.push(JSON.parse(data.toString('utf8')) as ManifestRecord);
    else r.tags.set(rest, data.toString('utf8'));
  }
  for (const [repo, r] of [...repos].sort(([a], [b]) => (a < b ? -1 : 1))) {
    for (const link of r.blobs) {
      await store.linkBlob(repo, link);
      progress.blobs++;
    }
    const byDigest = new Map(r.manifests.map((m) => [m.digest, m]));
    const tagsOf = new Map<string, string[]>();
    for (const [tag, digest] of r.tags) {
      if (!byDigest.has(digest)) continue;
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
  return progress;
}
