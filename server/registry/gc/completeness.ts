// GC's refusal rule: it runs only on a metadata store known to hold everything storage holds. A store
// that lost its data (a Redis flush, a deleted metadata directory) reads as "nothing is referenced",
// which would make every blob garbage.
import type { BlobDriver } from '../../../storage-drivers/blob/types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { BLOBS_ROOT, parseBlobKey } from '../keys.js';

async function storageHoldsBlobs(driver: BlobDriver): Promise<boolean> {
  for await (const key of driver.list(BLOBS_ROOT)) if (parseBlobKey(key)) return true;
  return false;
}

/**
 * Marks the store complete when it starts out empty over storage that holds no blob (a new
 * registry): from then on it sees every change. Returns why the store counts as complete, or
 * undefined when it does not (then `berth metadata rebuild` marks it).
 */
export async function markCompleteIfNew(driver: BlobDriver, metadata: MetadataStore, now: number): Promise<string | undefined> {
  const marker = await metadata.gc.completeness();
  if (marker !== undefined) return marker;
  if (!(await metadata.gc.isEmpty()) || (await storageHoldsBlobs(driver))) return undefined;
  const reason = `created empty at ${new Date(now).toISOString()}`;
  await metadata.gc.markComplete(reason);
  return reason;
}
