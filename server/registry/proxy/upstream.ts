import type http from 'node:http';
import type { Readable } from 'node:stream';
import { parseRetryAfter } from '../events/sender.js';
import { parseDigest, parseReference } from '../references.js';
import {
  describeCredentials,
  digestOf,
  embeddedMediaType,
  firstHeader,
  MAX_REDIRECTS,
  mediaTypeOf,
  parseDigestOrUndefined,
  RemoteRegistryHttp,
  type SendErrors,
  type TokenErrors,
} from '../remote-registry-http.js';
import { parseChallenge } from './challenge.js';
import { UpstreamDeniedError, UpstreamInvalidError, UpstreamNotFoundError, UpstreamUnavailableError } from './errors.js';
import { LimiterWaitExceededError, UpstreamLimiter, type Release } from './limiter.js';
import { BodyLimitError, discard, errorSnippet, readBody, TransportError } from './upstream-http.js';
import type { ResolvedUpstream } from './upstreams.js';

/*
 * One configured upstream registry, as the pull-through cache talks to it: manifests by tag or digest,
 * blobs as streams, tag lists and referrers as small JSON documents. Every operation holds one slot of the upstream's limiter from its first request
 * until its body is read (a blob: until the stream closes), authenticates the way the Docker token spec
 * says, and tries the upstream's URLs in order while they are unavailable.
 */

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** A tag list or referrers index: Docker Hub's longest unpaginated tag lists are a few hundred KiB. */
const MAX_LISTING_BYTES = 4 * 1024 * 1024;

export interface UpstreamEvent {
  upstream: string;
  /** request: one HTTP exchange (status, ms to headers); token: one token fetch; failover: moving to the next URL; throttled: waited ms in Berth's own line. */
  kind: 'request' | 'token' | 'failover' | 'throttled';
  status?: number;
  ms: number;
}

export type UpstreamObserver = (event: UpstreamEvent) => void;

export interface UpstreamOptions {
  observer?: UpstreamObserver | undefined;
  /** For token expiry and timings; default Date.now. */
  now?: (() => number) | undefined;
}

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

export interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

export interface UpstreamListing {
  body: unknown;
  headers: http.IncomingHttpHeaders;
}

export interface OpenedBlob {
  size: number;
  /** The body as it arrives; the caller verifies the digest. Destroy it to stop early. */
  stream: Readable;
}

interface Target {
  repo: string;
  /** `manifests/<ref>`, `blobs/<digest>`, `tags/list?…` or `referrers/<digest>?…`. */
  path: string;
  method: 'GET' | 'HEAD';
  accept?: string | undefined;
}

export class Upstream {
  readonly namespace: string;
  readonly hosts: readonly string[];
  readonly tagTtlMs: number;
  /** The first configured URL, for messages. */
  readonly url: string;
  private readonly limiter: UpstreamLimiter;
  /** Challenges (by base URL), tokens, Basic, redirects: shared with replication, worded here. */
  private readonly http: RemoteRegistryHttp;
  private readonly errors: SendErrors;
  private readonly now: () => number;

  constructor(
    private readonly config: ResolvedUpstream,
    private readonly options: UpstreamOptions = {},
  ) {
    this.namespace = config.namespace;
    this.hosts = config.hosts;
    this.tagTtlMs = config.tagTtlMs;
    this.url = config.urls[0] ?? '';
    this.now = options.now ?? Date.now;
    this.limiter = new UpstreamLimiter({
      maxConcurrent: config.maxConcurrent,
      requestsPerSecond: config.requestsPerSecond,
      maxWaitMs: config.maxWaitMs,
    });
    this.errors = this.sendErrors();
    this.http = new RemoteRegistryHttp(config, {
      now: this.now,
      observe: (event) => this.observe(event),
      tokenErrors: this.tokenErrors(),
      // The scope may be the upstream's own (its challenge's), sent back as it came.
      oneScopeParam: true,
    });
  }

  /** The upstream's name for a local repository below the namespace (`nginx` → `library/nginx` with libraryPrefix). */
  remoteName(localRepo: string): string {
    return this.config.libraryPrefix && !localRepo.includes('/') ? `library/${localRepo}` : localRepo;
  }

  /** Requests in flight and waiting in Berth's line, for metrics and tests. */
  get load(): { inFlight: number; waiting: number } {
    return { inFlight: this.limiter.inFlight, waiting: this.limiter.waiting };
  }

  /** HEAD of a manifest: undefined when the upstream has none (404). */
  async headManifest(repo: string, reference: string, accept: readonly string[], signal?: AbortSignal): Promise<ManifestHead | undefined> {
    const ref = parseReference(reference);
    const release = await this.slot(signal);
    let res: http.IncomingMessage;
    try {
      res = await this.exchange({ repo, path: `manifests/${reference}`, method: 'HEAD', accept: accept.join(', ') }, signal);
    } catch (err) {
      release();
      if (err instanceof UpstreamNotFoundError) return undefined;
      throw err;
    }
    discard(res, true);
    release();
    const header = firstHeader(res.headers['docker-content-digest']);
    const mediaType = mediaTypeOf(res);
    const size = Number(res.headers['content-length'] ?? 'NaN');
    if (header === undefined || mediaType === undefined || !Number.isSafeInteger(size)) {
      // Some registries leave these out of HEAD answers; the manifest itself says them all.
      const manifest = await this.getManifest(repo, reference, accept, signal);
      return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
    }
    const digest = this.checkedDigestHeader(header, `HEAD ${repo}:${reference}`);
    if (ref.kind === 'digest' && digest !== ref.digest.value)
      throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} answered HEAD ${repo}@${reference} with Docker-Content-Digest ${digest}`);
    return { digest, mediaType, size };
  }

  /** GET of a manifest, read whole (at most 4 MiB) and checked against the digest asked for and the one the upstream claims. */
  async getManifest(repo: string, reference: string, accept: readonly string[], signal?: AbortSignal): Promise<FetchedManifest> {
    const ref = parseReference(reference);
    const what = `${repo}${ref.kind === 'digest' ? '@' : ':'}${reference}`;
    const release = await this.slot(signal);
    try {
      const res = await this.exchange({ repo, path: `manifests/${reference}`, method: 'GET', accept: accept.join(', ') }, signal);
      const declared = Number(res.headers['content-length'] ?? 'NaN');
      if (Number.isFinite(declared) && declared > MAX_MANIFEST_BYTES) {
        res.destroy();
        throw this.tooLarge(what, `${declared} bytes`);
      }
      let bytes: Buffer;
      try {
        bytes = await readBody(res, MAX_MANIFEST_BYTES);
      } catch (err) {
        throw this.bodyError(err, what);
      }
      const algorithm = ref.kind === 'digest' ? ref.digest.algorithm : 'sha256';
      const digest = digestOf(algorithm, bytes);
      if (ref.kind === 'digest' && digest !== ref.digest.value)
        throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} sent a manifest for ${what} whose digest is ${digest}`);
      const header = firstHeader(res.headers['docker-content-digest']);
      if (header !== undefined) {
        const claimed = parseDigestOrUndefined(header);
        if (claimed === undefined || digestOf(claimed.algorithm, bytes) !== claimed.value)
          throw new UpstreamInvalidError(
            this.namespace,
            `upstream ${this.namespace} sent a manifest for ${what} that does not match its Docker-Content-Digest ${JSON.stringify(header.slice(0, 200))}`,
          );
      }
      const mediaType = mediaTypeOf(res) ?? embeddedMediaType(bytes);
      if (mediaType === undefined)
        throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} sent a manifest for ${what} with no Content-Type and no mediaType field`);
      return { bytes, digest, mediaType };
    } finally {
      release();
    }
  }

  /**
   * GET of a small JSON document of the repository (`tags/list?…`, `referrers/<digest>?…`), read whole
   * (at most 4 MiB) and parsed; the caller checks its shape. `path` may carry a query string.
   */
  async getListing(repo: string, path: string, accept: string, signal?: AbortSignal): Promise<UpstreamListing> {
    const what = `${repo}/${path}`;
    const release = await this.slot(signal);
    try {
      const res = await this.exchange({ repo, path, method: 'GET', accept }, signal);
      let bytes: Buffer;
      try {
        bytes = await readBody(res, MAX_LISTING_BYTES);
      } catch (err) {
        if (err instanceof BodyLimitError)
          throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} sent more than ${MAX_LISTING_BYTES} bytes for ${what}`);
        throw this.bodyError(err, what);
      }
      try {
        return { body: JSON.parse(bytes.toString('utf8')) as unknown, headers: res.headers };
      } catch {
        throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} sent no JSON for ${what}`);
      }
    } finally {
      release();
    }
  }

  /** GET of a blob, following redirects; the stream holds the upstream slot until it closes. */
  async openBlob(repo: string, digest: string, signal?: AbortSignal): Promise<OpenedBlob> {
    parseDigest(digest);
    const release = await this.slot(signal);
    let res: http.IncomingMessage;
    try {
      res = await this.exchange({ repo, path: `blobs/${digest}`, method: 'GET' }, signal);
    } catch (err) {
      release();
      throw err;
    }
    res.once('close', release);
    const size = Number(res.headers['content-length'] ?? 'NaN');
    if (!Number.isSafeInteger(size) || size < 0) {
      res.destroy();
      throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} sent blob ${repo}@${digest} without a Content-Length`);
    }
    return { size, stream: res };
  }

  /** Closes kept connections and fails requests still waiting in line. */
  close(): void {
    this.limiter.close(new UpstreamUnavailableError(this.namespace, 'unreachable', `upstream ${this.namespace} is closing`));
    this.http.close();
  }

  private async slot(signal: AbortSignal | undefined): Promise<Release> {
    try {
      const { release, waitedMs } = await this.limiter.acquire(signal);
      if (waitedMs > 0) this.observe({ kind: 'throttled', ms: waitedMs });
      return release;
    } catch (err) {
      if (!(err instanceof LimiterWaitExceededError)) throw err;
      this.observe({ kind: 'throttled', ms: err.waitedMs });
      throw new UpstreamUnavailableError(
        this.namespace,
        'queue-timeout',
        `too many requests to upstream ${this.namespace}: waited ${err.waitedMs} ms for one of its ${this.config.maxConcurrent} slots (proxy maxConcurrent, requestsPerSecond, maxWaitSeconds)`,
        Math.max(1, Math.ceil(this.config.maxWaitMs / 1000)),
      );
    }
  }

  private observe(event: Omit<UpstreamEvent, 'upstream'>): void {
    this.options.observer?.({ upstream: this.namespace, ...event });
  }

  /** Tries each base URL while the previous one is unavailable; the last error wins. */
  private async exchange(target: Target, signal: AbortSignal | undefined): Promise<http.IncomingMessage> {
    let last: unknown;
    for (const [i, base] of this.config.urls.entries()) {
      if (i > 0) this.observe({ kind: 'failover', ms: 0 });
      try {
        return await this.exchangeWith(base, target, signal);
      } catch (err) {
        if (!(err instanceof UpstreamUnavailableError) || signal?.aborted) throw err;
        last = err;
      }
    }
    throw last;
  }

  private async exchangeWith(base: string, target: Target, signal: AbortSignal | undefined): Promise<http.IncomingMessage> {
    const url = new URL(`${base}/v2/${target.repo}/${target.path}`);
    const what = `${target.method} ${url.pathname}`;
    const scope = `repository:${target.repo}:pull`;
    const request = { method: target.method, headers: target.accept ? { Accept: target.accept } : undefined };
    let authorization = await this.http.authorization(base, scope, undefined, this.errors);
    let { res } = await this.http.follow(url, request, authorization, signal, this.errors);
    if (res.statusCode === 401) {
      const challenge = parseChallenge(res.headers['www-authenticate']);
      const said = await errorSnippet(res);
      if (challenge === undefined) throw this.denied(base, what, 401, `without a challenge Berth can answer${said}`);
      this.http.remember(base, challenge);
      const retryScope = challenge.scheme === 'bearer' ? (challenge.scope ?? scope) : scope;
      const retry = await this.http.authorization(base, retryScope, authorization, this.errors);
      // Basic credentials already refused, or none to send: asking again cannot help.
      if (retry === undefined || retry === authorization) throw this.denied(base, what, 401, said);
      authorization = retry;
      ({ res } = await this.http.follow(url, request, authorization, signal, this.errors));
    }
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return res;
    const said = target.method === 'HEAD' ? '' : await errorSnippet(res);
    if (target.method === 'HEAD') discard(res, true);
    if (status === 401 || status === 403) throw this.denied(base, what, status, said);
    if (status === 404) throw new UpstreamNotFoundError(this.namespace, `upstream ${this.namespace} (${base}) has no ${url.pathname.slice(4)}${said}`);
    if (status === 429 || status >= 500) {
      const retryAfterMs = parseRetryAfter(firstHeader(res.headers['retry-after']), this.now());
      throw new UpstreamUnavailableError(
        this.namespace,
        status === 429 ? 'throttled' : 'server-error',
        `upstream ${this.namespace} (${base}) answered ${status} to ${what}${said}`,
        retryAfterMs === undefined ? undefined : Math.ceil(retryAfterMs / 1000),
        status,
      );
    }
    throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} (${base}) answered ${status} to ${what}${said}`);
  }

  /** The proxy's words for what can go wrong sending one request (redirects included). */
  private sendErrors(): SendErrors {
    const ns = this.namespace;
    return {
      transport: (err, url, own) => this.transportError(err, url, own),
      redirect: (problem, start) => {
        if (problem.kind === 'too-many') return new UpstreamInvalidError(ns, `upstream ${ns} redirected ${start.pathname} more than ${MAX_REDIRECTS} times`);
        if (problem.kind === 'invalid-url') return new UpstreamInvalidError(ns, `upstream ${ns} redirected to an invalid URL`);
        return new UpstreamInvalidError(ns, `upstream ${ns} redirected to a ${problem.protocol} URL`);
      },
      plainHttpRealm: (base, realm) =>
        new UpstreamInvalidError(ns, `upstream ${ns} (${base}) named a plain-http token realm (${realm.slice(0, 200)}): credentials are not sent in the clear`),
    };
  }

  /** …and for a token login, whose unreachable token service is `token-endpoint`. */
  private tokenErrors(): TokenErrors {
    const ns = this.namespace;
    return {
      ...this.sendErrors(),
      transport: (err, url, own) =>
        new UpstreamUnavailableError(ns, 'token-endpoint', `token service of upstream ${ns} unavailable: ${this.transportError(err, url, own).message}`),
      realm: (problem) =>
        problem.kind === 'invalid'
          ? new UpstreamInvalidError(ns, `upstream ${ns} named an invalid token realm ${JSON.stringify(problem.realm.slice(0, 200))}`)
          : new UpstreamInvalidError(ns, `upstream ${ns} named a token realm that is not http(s): ${problem.protocol}`),
      refused: ({ status, origin, said, retryAfterMs }) => {
        if (status === 401 || status === 403)
          return new UpstreamDeniedError(
            ns,
            `token service of upstream ${ns} (${origin}) refused ${describeCredentials(this.config.username)} (${status})${said}`,
            status,
          );
        if (status === 429 || status >= 500)
          return new UpstreamUnavailableError(
            ns,
            'token-endpoint',
            `token service of upstream ${ns} (${origin}) answered ${status}${said}`,
            retryAfterMs === undefined ? undefined : Math.ceil(retryAfterMs / 1000),
            status,
          );
        return new UpstreamInvalidError(ns, `token service of upstream ${ns} (${origin}) answered ${status}${said}`);
      },
      noToken: (origin, problem) => new UpstreamInvalidError(ns, `token service of upstream ${ns} (${origin}) ${problem}`),
    };
  }

  private transportError(err: TransportError, url: URL, own: boolean): UpstreamUnavailableError {
    const origin = own ? url.origin : `${url.origin}, redirected to`;
    return new UpstreamUnavailableError(this.namespace, err.kind, `upstream ${this.namespace} (${origin}): ${err.message}`);
  }

  private denied(base: string, what: string, status: number, said: string): UpstreamDeniedError {
    const who = describeCredentials(this.config.username);
    return new UpstreamDeniedError(this.namespace, `upstream ${this.namespace} (${base}) refused ${who} for ${what} (${status})${said}`, status);
  }

  private tooLarge(what: string, size: string): UpstreamInvalidError {
    return new UpstreamInvalidError(
      this.namespace,
      `upstream ${this.namespace} sent a manifest for ${what} of ${size}, more than the ${MAX_MANIFEST_BYTES} bytes allowed`,
    );
  }

  private bodyError(err: unknown, what: string): unknown {
    if (err instanceof BodyLimitError) return this.tooLarge(what, 'more bytes');
    if (err instanceof TransportError)
      return new UpstreamUnavailableError(this.namespace, err.kind, `upstream ${this.namespace}: ${err.message} while sending ${what}`);
    if (err instanceof UpstreamUnavailableError) return err;
    return new UpstreamUnavailableError(this.namespace, 'unreachable', `upstream ${this.namespace} broke off ${what}: ${(err as Error).message}`);
  }

  private checkedDigestHeader(header: string, what: string): string {
    const parsed = parseDigestOrUndefined(header);
    if (parsed === undefined)
      throw new UpstreamInvalidError(
        this.namespace,
        `upstream ${this.namespace} answered ${what} with an invalid Docker-Content-Digest ${JSON.stringify(header.slice(0, 200))}`,
      );
    return parsed.value;
  }
}
