import { OciError } from '../../errors.js';
import { MEDIA_TYPES } from '../manifest-parse.js';
import type { Referrer } from '../manifests.js';
import { parseDigest, type ParsedDigest } from '../references.js';
import type { ListPage } from '../repositories.js';
import { UpstreamInvalidError, UpstreamNotFoundError, UpstreamUnavailableError } from './errors.js';
import type { ProxyTarget } from './namespaces.js';
import { staleWarning, upstreamFailure } from './refusals.js';

/*
 * Tag lists and referrers of a proxy repository, as distribution's proxy answers tag lists: from the
 * upstream, which knows tags and referrers nobody pulled here yet. When the upstream cannot be asked
 * (the same failures that serve a stale manifest) the cache answers with what it holds and the same
 * Warning. Nothing is stored: a list is cheap to ask for again, and caching it would need expiry of
 * its own.
 */

export type TagListing =
  /** `next`: the query (`?n=…&last=…`) of the upstream's next page, for the local Link header. */
  { from: 'upstream'; tags: string[]; next: string | undefined } | { from: 'cache'; page: ListPage; stale?: string | undefined };

export interface ReferrerListing {
  manifests: Referrer[];
  stale?: string | undefined;
}

export interface ProxyListsOptions {
  /** A cached answer served because the upstream is unavailable (metrics). */
  onStale?: ((upstream: string) => void) | undefined;
}

export class ProxyLists {
  constructor(private readonly options: ProxyListsOptions = {}) {}

  /** Tags of the proxy repository: the upstream's page, else (unavailable, or it has no such name) the cached tags. */
  async tags(target: ProxyTarget, n: number | undefined, last: string | undefined, cached: () => Promise<ListPage>): Promise<TagListing> {
    const { upstream, remoteRepo } = target;
    const query = new URLSearchParams();
    if (n !== undefined) query.set('n', String(n));
    if (last !== undefined) query.set('last', last);
    const path = `tags/list${query.size > 0 ? `?${query}` : ''}`;
    let listing;
    try {
      listing = await upstream.getListing(remoteRepo, path, 'application/json');
    } catch (err) {
      if (err instanceof UpstreamUnavailableError) return { from: 'cache', page: await cachedOr(cached, err), stale: this.stale(upstream.namespace, err) };
      if (err instanceof UpstreamNotFoundError) return { from: 'cache', page: await cachedOr(cached, err) };
      throw upstreamFailure(err, 'NAME_UNKNOWN');
    }
    const tags = (listing.body as { tags?: unknown } | null)?.tags ?? null;
    if (tags !== null && !(Array.isArray(tags) && tags.every((t) => typeof t === 'string')))
      throw upstreamFailure(
        new UpstreamInvalidError(upstream.namespace, `upstream ${upstream.namespace} sent a tag list of ${remoteRepo} without a list of tags`),
        'NAME_UNKNOWN',
      );
    return { from: 'upstream', tags: (tags ?? []) as string[], next: nextQuery(listing.headers.link) };
  }

  /**
   * Referrers of `subject`: the upstream's, else the cached ones when it is unavailable or has no
   * referrers API (a 404 for the endpoint; a registry with the API answers an empty index).
   */
  async referrers(target: ProxyTarget, subject: ParsedDigest, artifactType: string | undefined, cached: () => Promise<Referrer[]>): Promise<ReferrerListing> {
    const { upstream, remoteRepo } = target;
    const path = `referrers/${subject.value}${artifactType ? `?${new URLSearchParams({ artifactType })}` : ''}`;
    let listing;
    try {
      listing = await upstream.getListing(remoteRepo, path, MEDIA_TYPES.ociIndex);
    } catch (err) {
      if (err instanceof UpstreamUnavailableError) return { manifests: await cached(), stale: this.stale(upstream.namespace, err) };
      if (err instanceof UpstreamNotFoundError) return { manifests: await cached() };
      throw upstreamFailure(err, 'MANIFEST_UNKNOWN');
    }
    const manifests = (listing.body as { manifests?: unknown } | null)?.manifests;
    const referrers = Array.isArray(manifests) ? manifests.map(descriptor) : undefined;
    if (!referrers || referrers.includes(undefined))
      throw upstreamFailure(
        new UpstreamInvalidError(
          upstream.namespace,
          `upstream ${upstream.namespace} sent referrers of ${remoteRepo}@${subject.value} that are not an index of descriptors`,
        ),
        'MANIFEST_UNKNOWN',
      );
    // An upstream that ignored the filter is filtered here: the client is told it was applied.
    const all = referrers as Referrer[];
    return { manifests: artifactType ? all.filter((r) => r.artifactType === artifactType) : all };
  }

  private stale(upstream: string, err: UpstreamUnavailableError): string {
    this.options.onStale?.(upstream);
    return staleWarning(upstream, err);
  }
}

/** The cached tags; none cached: what the upstream's failure means to the client (NAME_UNKNOWN, or 503). */
async function cachedOr(cached: () => Promise<ListPage>, err: UpstreamNotFoundError | UpstreamUnavailableError): Promise<ListPage> {
  try {
    return await cached();
  } catch (local) {
    if (!(local instanceof OciError && local.code === 'NAME_UNKNOWN')) throw local;
    throw err instanceof UpstreamNotFoundError ? new OciError('NAME_UNKNOWN', err.message) : upstreamFailure(err, 'NAME_UNKNOWN');
  }
}

/** `?n=…&last=…` of an RFC 5988 `Link: <…>; rel="next"`, or undefined when there is no usable next page. */
function nextQuery(header: string | string[] | undefined): string | undefined {
  const link = Array.isArray(header) ? header.join(', ') : header;
  const target = link === undefined ? undefined : /<([^>]*)>\s*;\s*rel="?next"?/i.exec(link)?.[1];
  if (target === undefined) return undefined;
  let params: URLSearchParams;
  try {
    params = new URL(target, 'http://upstream.invalid').searchParams;
  } catch {
    return undefined;
  }
  const last = params.get('last');
  if (last === null) return undefined;
  const next = new URLSearchParams();
  const n = params.get('n');
  if (n !== null && /^\d{1,15}$/.test(n)) next.set('n', n);
  next.set('last', last);
  return `?${next}`;
}

function descriptor(value: unknown): Referrer | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || typeof d.digest !== 'string' || typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0)
    return undefined;
  try {
    parseDigest(d.digest);
  } catch {
    return undefined;
  }
  const referrer: Referrer = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (typeof d.artifactType === 'string') referrer.artifactType = d.artifactType;
  if (typeof d.annotations === 'object' && d.annotations !== null && Object.values(d.annotations).every((v) => typeof v === 'string'))
    referrer.annotations = d.annotations as Record<string, string>;
  return referrer;
}
