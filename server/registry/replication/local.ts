// This Berth as one side of a replication rule: reads and writes go through the domain services, so a
// replicated image is ordinary content (verified on arrival, charged to quotas, pinned against GC,
// refused by immutable-tag rules, recorded as events) exactly as if a client had pushed it.
import type { Readable } from 'node:stream';
import type { EventOrigin } from '../../../storage-drivers/metadata/event-types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { OciError } from '../../errors.js';
import type { BlobService } from '../blobs.js';
import type { ManifestService } from '../manifests.js';
import { parseDigest, parseReference } from '../references.js';
import type { UploadService } from '../uploads.js';
import type {
  BlobBody,
  DeleteTagResult,
  FetchedManifest,
  ManifestRef,
  OpenBlobAt,
  PutBlobOptions,
  PutBlobResult,
  ReferrerRef,
  ReplicationEndpoint,
} from './endpoint.js';

const CATALOG_PAGE = 1000;
/** A source that fails mid-blob is reopened where the upload got to, this many times. */
const UPLOAD_ATTEMPTS = 5;

export interface LocalEndpointDeps {
  metadata: MetadataStore;
  manifests: ManifestService;
  blobs: BlobService;
  uploads: UploadService;
  /** Who the changes are recorded as: the rule, as a system actor. */
  origin: EventOrigin;
}

function isUnknown(err: unknown, ...codes: string[]): boolean {
  return err instanceof OciError && codes.includes(err.code);
}

export class LocalEndpoint implements ReplicationEndpoint {
  readonly name = 'local';

  constructor(private readonly deps: LocalEndpointDeps) {}

  async *repositories(signal: AbortSignal): AsyncIterable<string> {
    let last: string | undefined;
    for (;;) {
      signal.throwIfAborted();
      const page = await this.deps.metadata.listRepositories({ n: CATALOG_PAGE, last });
      yield* page;
      if (page.length < CATALOG_PAGE) return;
      last = page[page.length - 1];
    }
  }

  async tags(repo: string): Promise<string[] | undefined> {
    if (!(await this.deps.metadata.repositoryExists(repo))) return undefined;
    return this.deps.metadata.listTags(repo, {});
  }

  async headManifest(repo: string, reference: string): Promise<ManifestRef | undefined> {
    try {
      const record = await this.deps.manifests.resolve(repo, parseReference(reference));
      return { digest: record.digest, mediaType: record.mediaType, size: record.size };
    } catch (err) {
      if (isUnknown(err, 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN')) return undefined;
      throw err;
    }
  }

  async getManifest(repo: string, reference: string): Promise<FetchedManifest | undefined> {
    try {
      const record = await this.deps.manifests.resolve(repo, parseReference(reference));
      const bytes = await this.deps.manifests.read(record);
      return { digest: record.digest, mediaType: record.mediaType, size: record.size, bytes };
    } catch (err) {
      if (isUnknown(err, 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN')) return undefined;
      throw err;
    }
  }

  async referrers(repo: string, digest: string): Promise<ReferrerRef[]> {
    const found = await this.deps.manifests.referrers(repo, parseDigest(digest), undefined);
    return found.map((r) => ({ digest: r.digest, mediaType: r.mediaType, size: r.size, artifactType: r.artifactType }));
  }

  async hasBlob(repo: string, digest: string): Promise<boolean> {
    try {
      await this.deps.blobs.stat(repo, parseDigest(digest));
      return true;
    } catch (err) {
      if (isUnknown(err, 'BLOB_UNKNOWN', 'NAME_UNKNOWN')) return false;
      throw err;
    }
  }

  async openBlob(repo: string, digest: string, offset: number, signal: AbortSignal): Promise<BlobBody> {
    const parsed = parseDigest(digest);
    const { size } = await this.deps.blobs.stat(repo, parsed);
    const range = offset > 0 ? { start: offset, end: size - 1 } : undefined;
    if (offset > 0 && offset >= size) throw new OciError('RANGE_INVALID', `offset ${offset} is past the end of blob ${digest} (${size} bytes)`);
    return { size, stream: await this.deps.blobs.open(parsed, size, range, signal) };
  }

  async putBlob(repo: string, digest: string, size: number, open: OpenBlobAt, options: PutBlobOptions): Promise<PutBlobResult> {
    if (await this.hasBlob(repo, digest)) return 'present';
    const parsed = parseDigest(digest);
    // Any local repository holding it will do: replication is the registry's own doing, not a client's.
    const sources = options.mountFrom?.length ? options.mountFrom : [undefined];
    for (const from of sources) {
      if (await this.deps.blobs.mount(repo, parsed, from, async () => true, this.deps.origin)) return 'mounted';
    }
    const { uploads } = this.deps;
    const session = await uploads.start(repo);
    try {
      let offset = 0;
      for (let attempt = 1; ; attempt++) {
        let body: Readable | undefined;
        try {
          body = await open(offset, options.signal);
          await uploads.append(repo, session.id, { body, signal: options.signal });
          break;
        } catch (err) {
          body?.destroy();
          if (options.signal.aborted || attempt >= UPLOAD_ATTEMPTS) throw err;
          // What reached storage stays; the next attempt starts after it.
          offset = (await uploads.get(repo, session.id)).offset;
        }
      }
      const stored = (await uploads.get(repo, session.id)).offset;
      if (stored !== size) throw new OciError('SIZE_INVALID', `blob ${digest} arrived with ${stored} bytes, not the ${size} its source declared`);
      await uploads.finish(repo, session.id, parsed, { signal: options.signal }, this.deps.origin);
      return 'uploaded';
    } catch (err) {
      await uploads.cancel(repo, session.id).catch(() => undefined);
      throw err;
    }
  }

  async putManifest(repo: string, reference: string, manifest: FetchedManifest, _signal?: AbortSignal, partial = false): Promise<void> {
    const ref = parseReference(reference);
    if (partial) {
      // The children the platform filter left out are not here; stored as the proxy stores an upstream's index.
      await this.deps.manifests.cache(repo, ref.kind === 'tag' ? [ref.tag] : [], manifest.bytes, manifest.mediaType);
      return;
    }
    await this.deps.manifests.put(repo, ref, [], manifest.bytes, manifest.mediaType, undefined, this.deps.origin);
  }

  async deleteTag(repo: string, tag: string): Promise<DeleteTagResult> {
    try {
      await this.deps.manifests.deleteTag(repo, tag, undefined, this.deps.origin);
      return 'deleted';
    } catch (err) {
      if (isUnknown(err, 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN')) return 'absent';
      throw err;
    }
  }

  async deleteManifest(repo: string, digest: string): Promise<boolean> {
    try {
      await this.deps.manifests.deleteByDigest(repo, parseDigest(digest), undefined, this.deps.origin);
      return true;
    } catch (err) {
      if (isUnknown(err, 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN')) return false;
      throw err;
    }
  }

  close(): void {}
}
