// events.enabled: false. Callers always say who made a change; with events off this one layer drops
// that before the store sees it, so nothing reaches the outbox and no call site needs to know.
import type { EventMetadata } from '../../../storage-drivers/metadata/event-types.js';
import type { GcMetadata, UnusedManifestRule } from '../../../storage-drivers/metadata/gc-types.js';
import type {
  BlobLink,
  DeleteManifestOptions,
  DeleteTagOptions,
  Digest,
  LinkBlobOptions,
  ManifestRecord,
  MetadataStore,
  PutManifestOptions,
  UnlinkBlobOptions,
} from '../../../storage-drivers/metadata/types.js';

function unrecorded<T extends { event?: unknown }>(options: T | undefined): T | undefined {
  if (options?.event === undefined) return options;
  const { event: _event, ...rest } = options;
  return rest as T;
}

export function withoutEventRecords(store: MetadataStore): MetadataStore {
  const gc: GcMetadata = Object.assign(Object.create(store.gc) as GcMetadata, {
    deleteManifestIfUnused: (repo: string, digest: Digest, rule: UnusedManifestRule) =>
      store.gc.deleteManifestIfUnused(repo, digest, unrecorded(rule) as UnusedManifestRule),
  });
  // Records that join no metadata change (GC's blob deletions, scrub findings) are not logged either.
  const events: EventMetadata = Object.assign(Object.create(store.events) as EventMetadata, { append: async () => undefined });
  return Object.assign(Object.create(store) as MetadataStore, {
    gc,
    events,
    putManifest: (repo: string, manifest: ManifestRecord, tags: string[], options?: PutManifestOptions) =>
      store.putManifest(repo, manifest, tags, unrecorded(options)),
    deleteManifest: (repo: string, digest: Digest, options?: DeleteManifestOptions) => store.deleteManifest(repo, digest, unrecorded(options)),
    deleteTag: (repo: string, tag: string, options?: DeleteTagOptions) => store.deleteTag(repo, tag, unrecorded(options)),
    linkBlob: (repo: string, link: BlobLink, options?: LinkBlobOptions) => store.linkBlob(repo, link, unrecorded(options)),
    unlinkBlob: (repo: string, digest: Digest, options?: UnlinkBlobOptions) => store.unlinkBlob(repo, digest, unrecorded(options)),
  });
}
