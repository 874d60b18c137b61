// Filling a metadata store directly (no HTTP) for the rows that need a store far bigger than pushes
// could make in a benchmark's time: the store is opened as `berth serve` would open it, filled, closed.
import { createHash } from 'node:crypto';
import { parseConfig, resolvedPaths } from '../server/config.js';
import { createMetadataStore } from '../storage-drivers/metadata/factory.js';
import type { MetadataStore } from '../storage-drivers/metadata/types.js';

export const OCI_MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

/** A made-up digest for records that never need bytes in storage. */
export function digestOf(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** Opens the metadata store of a Berth config, runs `fill` on it, closes it; the seconds it took. */
export async function seedStore(config: Record<string, unknown>, fill: (store: MetadataStore) => Promise<void>): Promise<number> {
  const parsed = parseConfig(config);
  const started = performance.now();
  const store = await createMetadataStore(parsed.metadata, resolvedPaths(parsed));
  try {
    await fill(store);
  } finally {
    await store.close();
  }
  return (performance.now() - started) / 1000;
}
