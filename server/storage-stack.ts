// The storage stack, built in one place for `berth serve`, the CLI commands and the tests alike:
//   blob driver → instrument (key checks, timings, error naming)
//   metadata store → instrumentMetadata (timings) → JournaledStore (journal records through the
//   instrumented driver) → quotaCounted (every link removal frees its namespace's share)
// so whatever runs, and whatever a test exercises, goes through the same layers in the same order.
import { createBlobDriver } from '../storage-drivers/blob/factory.js';
import { instrument, type BlobObserver } from '../storage-drivers/blob/instrumented.js';
import type { BlobDriver } from '../storage-drivers/blob/types.js';
import { createMetadataStore } from '../storage-drivers/metadata/factory.js';
import type { MetadataStore } from '../storage-drivers/metadata/types.js';
import { resolvedPaths, type BerthConfig } from './config.js';
import { instrumentMetadata } from './operations/metadata-instrumented.js';
import type { MetadataObservation } from './operations/metrics.js';
import { JournaledStore } from './registry/journal.js';
import { quotaCounted } from './registry/quotas/counted-store.js';
import { withoutEventRecords } from './registry/events/unrecorded-store.js';

/** Where each layer reports its operations (Metrics.observeStorage / observeMetadata); none: not reported. */
export interface StorageObservers {
  storage?: BlobObserver;
  metadata?: (observation: MetadataObservation) => void;
}

export interface StorageStack {
  /** The blob driver behind `instrument`: every storage access goes through this one. */
  readonly driver: BlobDriver;
  /** What the registry uses: the instrumented store, with every committed change journaled through `driver`. */
  readonly metadata: MetadataStore;
  /**
   * The instrumented store without the journal: for `berth metadata rebuild`, which writes back what
   * the journal already holds, and for looking at the backend (`instanceof RedisStore`).
   */
  readonly store: MetadataStore;
  /** Closes the metadata store, then the driver. */
  close(): Promise<void>;
}

/** Stacks the layers over a bare driver and store (the factories' output, or a test's own). */
export function assembleStorageStack(
  backend: { driver: BlobDriver; metadata: MetadataStore },
  observers: StorageObservers = {},
  options: { recordEvents?: boolean } = {},
): StorageStack {
  const driver = instrument(backend.driver, observers.storage ?? (() => undefined));
  const store = instrumentMetadata(backend.metadata, observers.metadata ?? (() => undefined));
  const journaled = quotaCounted(new JournaledStore(store, driver));
  const metadata = (options.recordEvents ?? true) ? journaled : withoutEventRecords(journaled);
  return {
    driver,
    metadata,
    store,
    async close() {
      try {
        await metadata.close();
      } finally {
        await driver.close();
      }
    },
  };
}

/**
 * Opens the configured driver and metadata store and stacks the layers over them. Not yet checked for
 * reachability: ping both (Ops.assertReady does).
 */
export async function buildStorageStack(config: BerthConfig, observers: StorageObservers = {}): Promise<StorageStack> {
  const paths = resolvedPaths(config);
  const driver = createBlobDriver(config.storage, paths);
  let metadata: MetadataStore;
  try {
    metadata = await createMetadataStore({ ...config.metadata, eventLogMaxLength: config.events.maxEvents }, paths);
  } catch (err) {
    await driver.close().catch(() => undefined);
    throw err;
  }
  return assembleStorageStack({ driver, metadata }, observers, { recordEvents: config.events.enabled });
}
