import { randomUUID } from 'node:crypto';
import type { ManifestRecord, MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { OciError } from '../../errors.js';
import { MEDIA_TYPES } from '../manifest-parse.js';
import type { ManifestService } from '../manifests.js';
import { parseDigest, type Reference } from '../references.js';
import { UpstreamUnavailableError } from './errors.js';
import type { ProxyTarget } from './namespaces.js';
import { staleWarning, upstreamFailure } from './refusals.js';

/*
 * Manifests of a proxy namespace. A digest names immutable content: once cached it is served from
 * here and the upstream is never asked again. A tag is checked at the upstream at most once per
 * tagTtlSeconds across all processes: the "last checked" mark is a metadata lease named for the tag,
 * taken for the TTL by whichever request checks first. The store has no generic key/value facility,
 * and a lease is exactly "someone checked within the TTL", shared by every process and expiring by
 * itself (and it keeps concurrent checks of one tag to one).
 */

/** Everything Berth can store, asked of the upstream whatever the client sent: the cache serves every client. */
const ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerList, MEDIA_TYPES.dockerManifest];

export interface CachedManifest {
  record: ManifestRecord;
  /** Set when the cached copy is served because the upstream could not be asked: the Warning header's text. */
  stale?: string;
}

export interface ManifestCacheOptions {
  metadata: MetadataStore;
  manifests: ManifestService;
  /** A cached copy served because the upstream is unavailable (metrics). */
  onStale?: ((upstream: string) => void) | undefined;
}

export function tagCheckLease(repo: string, tag: string): string {
  return `proxy-tag-checked:${repo}:${tag}`;
}

export class ManifestCache {
  constructor(private readonly options: ManifestCacheOptions) {}

  /** The manifest `reference` names in the proxy repository `repo`, from the cache or fetched into it. */
  async resolve(repo: string, target: ProxyTarget, reference: Reference): Promise<CachedManifest> {
    if (reference.kind === 'digest') {
      const cached = await this.options.metadata.getManifest(repo, reference.digest.value);
      if (cached) return { record: cached };
      try {
        return { record: await this.fetch(repo, target, reference.digest.value, []) };
      } catch (err) {
        throw upstreamFailure(err, 'MANIFEST_UNKNOWN');
      }
    }
    return this.resolveTag(repo, target, reference.tag);
  }

  private async resolveTag(repo: string, target: ProxyTarget, tag: string): Promise<CachedManifest> {
    const { metadata } = this.options;
    const { upstream, remoteRepo } = target;
    const cached = await metadata.getTaggedManifest(repo, tag);
    const lease = tagCheckLease(repo, tag);
    const holder = randomUUID();
    // Not taking the mark means another request checked within the TTL (or is checking now). Without a
    // cached copy there is nothing to serve but the upstream's answer, so the upstream is asked anyway.
    const held = upstream.tagTtlMs > 0 && (await metadata.acquireLease(lease, holder, upstream.tagTtlMs));
    if (cached && upstream.tagTtlMs > 0 && !held) return { record: cached };
    // A check that failed must not count as one: the next request asks again.
    const forget = async () => {
      if (held) await metadata.releaseLease(lease, holder);
    };
    let head;
    try {
      head = await upstream.headManifest(remoteRepo, tag, ACCEPT);
    } catch (err) {
      await forget();
      return this.staleOr(cached, upstream.namespace, err);
    }
    if (head === undefined) {
      await forget();
      throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} is not in repository ${remoteRepo} at upstream ${upstream.namespace}`);
    }
    if (cached?.digest === head.digest) return { record: cached };
    const known = await metadata.getManifest(repo, head.digest);
    if (known) {
      // The content is here already (pulled by digest, or the tag moved back): only the tag moves.
      const bytes = await this.options.manifests.read(known);
      await this.options.manifests.cache(repo, [tag], bytes, known.mediaType, parseDigest(known.digest).algorithm);
      return { record: known };
    }
    try {
      return { record: await this.fetch(repo, target, head.digest, [tag]) };
    } catch (err) {
      await forget();
      return this.staleOr(cached, upstream.namespace, err);
    }
  }

  /** The cached copy with a warning when the upstream is unavailable; otherwise the failure, as a client hears it. */
  private staleOr(cached: ManifestRecord | undefined, upstream: string, err: unknown): CachedManifest {
    if (cached && err instanceof UpstreamUnavailableError) {
      this.options.onStale?.(upstream);
      return { record: cached, stale: staleWarning(upstream, err) };
    }
    throw upstreamFailure(err, 'MANIFEST_UNKNOWN');
  }

  private async fetch(repo: string, target: ProxyTarget, digest: string, tags: string[]): Promise<ManifestRecord> {
    // Upstream errors go up as they are: the caller decides between a stale copy and a client error.
    const fetched = await target.upstream.getManifest(target.remoteRepo, digest, ACCEPT);
    await this.options.manifests.cache(repo, tags, fetched.bytes, fetched.mediaType, parseDigest(fetched.digest).algorithm);
    const record = await this.options.metadata.getManifest(repo, fetched.digest);
    if (!record) throw new OciError('UNAVAILABLE', `manifest ${fetched.digest} was cached but is gone again (garbage collection?); retry`);
    return record;
  }
}
