// Builds garbage collection's two halves from the configuration, for the server and `berth gc` alike.
import type { BlobDriver } from '../../../storage-drivers/blob/types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import type { BerthConfig } from '../../config.js';
import { Collector } from './collector.js';
import { GcUsage } from './usage.js';

/** How long a push waits for GC to finish deleting a digest it stores again (one object's delete). */
const DELETING_WAIT_MS = 10_000;

export function gcUsage(metadata: MetadataStore, config: BerthConfig, now: () => number): GcUsage {
  const gc = config.gc;
  return new GcUsage(metadata, {
    delayMs: gc.delaySeconds * 1000,
    pinMs: gc.pinSeconds * 1000,
    untaggedAgeMs: gc.deleteUntagged ? gc.untaggedAgeSeconds * 1000 : undefined,
    deletingWaitMs: DELETING_WAIT_MS,
    now,
  });
}

/** `sweepUploads` ends abandoned uploads as part of each pass (the server's UploadService.sweep). */
export function gcCollector(
  driver: BlobDriver,
  metadata: MetadataStore,
  config: BerthConfig,
  now: () => number,
  sweepUploads?: () => Promise<number>,
): Collector {
  const gc = config.gc;
  return new Collector(driver, metadata, {
    delayMs: gc.delaySeconds * 1000,
    quarantineMs: gc.quarantineSeconds * 1000,
    untaggedAgeMs: gc.deleteUntagged ? gc.untaggedAgeSeconds * 1000 : undefined,
    leaseMs: gc.leaseSeconds * 1000,
    now,
    ...(sweepUploads ? { sweepUploads } : {}),
  });
}
