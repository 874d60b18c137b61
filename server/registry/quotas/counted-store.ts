// Every removal of a repository link, whoever makes it (a DELETE, garbage collection, a retention run),
// frees the namespace's share AFTER the link is gone: one layer over the store rather than a call at
// each site, so no path that drops links can forget it.
import type { GcMetadata, UnusedManifestRule } from '../../../storage-drivers/metadata/gc-types.js';
import type { DeleteManifestOptions, Digest, ManifestRecord, MetadataStore, UnlinkBlobOptions } from '../../../storage-drivers/metadata/types.js';
import { releaseHolder } from './service.js';

/** `store` with its link removals counted in the namespace records (quota-types.ts). */
export function quotaCounted(store: MetadataStore): MetadataStore {
  const gc: GcMetadata = Object.assign(Object.create(store.gc) as GcMetadata, {
    async unlinkOrphan(repo: string, digest: Digest): Promise<boolean> {
      const unlinked = await store.gc.unlinkOrphan(repo, digest);
      if (unlinked) await releaseHolder(store, repo, 'blob', digest);
      return unlinked;
    },
    async deleteManifestIfUnused(repo: string, digest: Digest, rule: UnusedManifestRule): Promise<ManifestRecord | undefined> {
      const record = await store.gc.deleteManifestIfUnused(repo, digest, rule);
      if (record !== undefined && !rule.dryRun) await releaseHolder(store, repo, 'manifest', digest);
      return record;
    },
  });
  return Object.assign(Object.create(store) as MetadataStore, {
    gc,
    async unlinkBlob(repo: string, digest: Digest, options?: UnlinkBlobOptions): Promise<boolean> {
      const unlinked = await store.unlinkBlob(repo, digest, options);
      if (unlinked) await releaseHolder(store, repo, 'blob', digest);
      return unlinked;
    },
    async deleteManifest(repo: string, digest: Digest, options?: DeleteManifestOptions): Promise<string[] | undefined> {
      const dropped = await store.deleteManifest(repo, digest, options);
      if (dropped !== undefined) await releaseHolder(store, repo, 'manifest', digest);
      return dropped;
    },
  });
}
