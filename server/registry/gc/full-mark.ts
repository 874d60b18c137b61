// The full pass: queue every stored blob (and, for deleteUntagged, every journaled manifest) so the
// collector judges all of it: for a store rebuilt from the journal, and `berth gc --full` when queued
// work may have been lost (a crash between a delete and its queueing). Not after restoring a metadata
// backup: that store lacks what was pushed since, so `berth metadata rebuild` must come first.
import type { BlobDriver } from '../../../storage-drivers/blob/types.js';
import type { GcWork } from '../../../storage-drivers/metadata/gc-types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { BLOBS_ROOT, digestOfJournalPath, JOURNAL_ROOT, parseBlobKey, parseJournalKey } from '../keys.js';

const BATCH = 500;

export interface QueuedCount {
  blobs: number;
  manifests: number;
}

export async function queueStored(
  driver: BlobDriver,
  store: MetadataStore,
  options: { manifests: boolean; now?: number; onQueued?: (count: QueuedCount) => void },
): Promise<QueuedCount> {
  const due = options.now ?? Date.now();
  const count: QueuedCount = { blobs: 0, manifests: 0 };
  let batch: GcWork[] = [];
  const flush = async () => {
    await store.gc.enqueue(batch);
    batch = [];
    options.onQueued?.({ ...count });
  };
  for await (const key of driver.list(BLOBS_ROOT)) {
    const parsed = parseBlobKey(key);
    if (!parsed) continue;
    batch.push({ kind: 'blob', digest: `${parsed.algorithm}:${parsed.hex}`, due });
    count.blobs++;
    if (batch.length >= BATCH) await flush();
  }
  if (options.manifests) {
    for await (const key of driver.list(JOURNAL_ROOT)) {
      const entry = parseJournalKey(key);
      if (entry?.kind !== 'manifests') continue;
      batch.push({ kind: 'manifest', repo: entry.repo, digest: digestOfJournalPath(entry.rest), due });
      count.manifests++;
      if (batch.length >= BATCH) await flush();
    }
  }
  await flush();
  return count;
}
