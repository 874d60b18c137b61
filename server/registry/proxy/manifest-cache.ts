import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
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
  /** How a request waits for another process's first fetch of a manifest (backoff bounds, the most in all). */
  waitMs?: { min: number; max: number; total: number } | undefined;
}

export function tagCheckLease(repo: string, tag: string): string {
  return `proxy-tag-checked:${repo}:${tag}`;
}

/** The lease a first fetch of a manifest by digest holds (released when done): past it, waiters ask the upstream themselves. */
const FETCH_LEASE_MS = 60_000;

export function manifestFetchLease(repo: string, digest: string): string {
  return `proxy-manifest-fetch:${repo}:${digest}`;
}

export class ManifestCache {
  /** Resolutions in flight in this process: concurrent pulls of one reference share one. */
  private readonly inFlight = new Map<string, Promise<CachedManifest>>();
  private readonly waitMs: { min: number; max: number; total: number };

  constructor(private readonly options: ManifestCacheOptions) {
    this.waitMs = options.waitMs ?? { min: 10, max: 250, total: 10_000 };
  }

  /** The manifest `reference` names in the proxy repository `repo`, from the cache or fetched into it. */
  resolve(repo: string, target: ProxyTarget, reference: Reference): Promise<CachedManifest> {
    const key = `${repo}\0${reference.kind === 'tag' ? `tag:${reference.tag}` : reference.digest.value}`;
    let going = this.inFlight.get(key);
    if (!going) {
      going = (reference.kind === 'digest' ? this.resolveDigest(repo, target, reference.digest.value) : this.resolveTag(repo, target, reference.tag)).finally(
        () => this.inFlight.delete(key),
      );
      this.inFlight.set(key, going);
    }
    return going;
  }

  private async resolveDigest(repo: string, target: ProxyTarget, digest: string): Promise<CachedManifest> {
    const { metadata } = this.options;
    const cached = await metadata.getManifest(repo, digest);
    if (cached) return { record: cached };
    // Another process fetching it now: its copy, once stored, is this request's too.
    const lease = manifestFetchLease(repo, digest);
    const holder = randomUUID();
    const ttl = FETCH_LEASE_MS;
    if (!(await metadata.acquireLease(lease, holder, ttl))) {
      const theirs = await this.waitForOther(
        () => metadata.getManifest(repo, digest),
        () => metadata.acquireLease(lease, holder, ttl),
      );
      if (theirs) return { record: theirs };
    }
    try {
      return { record: await this.fetch(repo, target, digest, []) };
    } catch (err) {
      throw upstreamFailure(err, 'MANIFEST_UNKNOWN');
    } finally {
      await metadata.releaseLease(lease, holder).catch(() => undefined);
    }
  }

  /**
   * Waits, backing off, for another process to store what this request wants: `found` once it is
   * there; undefined (ask the upstream itself) once `take` wins the other's lease (it failed or gave
   * up) or the wait runs out.
   */
  private async waitForOther(found: () => Promise<ManifestRecord | undefined>, take: () => Promise<boolean>): Promise<ManifestRecord | undefined> {
    const deadline = Date.now() + this.waitMs.total;
    for (let wait = this.waitMs.min; Date.now() < deadline; wait = Math.min(wait * 2, this.waitMs.max)) {
      await sleep(wait);
      const record = await found();
      if (record) return record;
      if (await take()) return undefined;
    }
    return undefined;
  }

  private async resolveTag(repo: string, target: ProxyTarget, tag: string): Promise<CachedManifest> {
    const { metadata } = this.options;
    const { upstream, remoteRepo } = target;
    const cached = await metadata.getTaggedManifest(repo, tag);
    const lease = tagCheckLease(repo, tag);
    const holder = randomUUID();
    // Not taking the mark means another request checked within the TTL (or is checking now). Without a
    // cached copy there is nothing to serve but the upstream's answer, so the upstream is asked anyway.
    let held = upstream.tagTtlMs > 0 && (await metadata.acquireLease(lease, holder, upstream.tagTtlMs));
    if (cached && upstream.tagTtlMs > 0 && !held) return { record: cached };
    if (!cached && upstream.tagTtlMs > 0 && !held) {
      // Another process is checking this tag for the first time now: its answer, once cached, is ours.
      const theirs = await this.waitForOther(
        () => metadata.getTaggedManifest(repo, tag),
        () => metadata.acquireLease(lease, holder, upstream.tagTtlMs),
      );
      if (theirs) return { record: theirs };
      held = await metadata.acquireLease(lease, holder, upstream.tagTtlMs);
    }
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
