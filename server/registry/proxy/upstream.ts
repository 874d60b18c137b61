import { createHash } from 'node:crypto';
import type http from 'node:http';
import type { Readable } from 'node:stream';
import { berthVersion } from '../../operations/version.js';
import { parseRetryAfter } from '../events/sender.js';
import { parseDigest, parseReference, type ParsedDigest } from '../references.js';
import { parseChallenge, type Challenge } from './challenge.js';
import { UpstreamDeniedError, UpstreamInvalidError, UpstreamNotFoundError, UpstreamUnavailableError } from './errors.js';
import { LimiterWaitExceededError, UpstreamLimiter, type Release } from './limiter.js';
import { TokenCache } from './token-cache.js';
import { BodyLimitError, discard, errorSnippet, makeAgents, readBody, send, TransportError } from './upstream-http.js';
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
const MAX_REDIRECTS = 5;
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);

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

function mediaTypeOf(res: http.IncomingMessage): string | undefined {
  const type = res.headers['content-type']?.split(';')[0]?.trim();
  return type === '' ? undefined : type;
}

function digestOf(algorithm: ParsedDigest['algorithm'], bytes: Buffer): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

export class Upstream {
  readonly namespace: string;
  readonly hosts: readonly string[];
  readonly tagTtlMs: number;
  /** The first configured URL, for messages. */
  readonly url: string;
  private readonly limiter: UpstreamLimiter;
  private readonly tokens: TokenCache;
  /** The last challenge each base URL sent, so later requests send credentials at once. */
  private readonly challenges = new Map<string, Challenge>();
  private readonly ownAgents: ReturnType<typeof makeAgents>;
  private readonly foreignAgents: ReturnType<typeof makeAgents>;
  private readonly origins: Set<string>;
  private readonly now: () => number;
  private readonly userAgent = `Berth/${berthVersion()}`;

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
    this.tokens = new TokenCache({
      now: this.now,
      fetch: (challenge, scope) => this.fetchToken(challenge, scope),
    });
    // Two sockets more than the cap: token fetches and redirects happen while an operation holds its slot.
    this.ownAgents = makeAgents({ ca: config.ca, maxSockets: config.maxConcurrent + 2 });
    this.foreignAgents = makeAgents({ maxSockets: config.maxConcurrent + 2 });
    this.origins = new Set(config.urls.map((url) => new URL(url).origin));
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
    for (const agents of [this.ownAgents, this.foreignAgents]) {
      agents.http.destroy();
      agents.https.destroy();
    }
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
    let authorization = await this.authorization(base, scope, undefined);
    let res = await this.follow(url, target, authorization, signal);
    if (res.statusCode === 401) {
      const challenge = parseChallenge(res.headers['www-authenticate']);
      const said = await errorSnippet(res);
      if (challenge === undefined) throw this.denied(base, what, 401, `without a challenge Berth can answer${said}`);
      this.challenges.set(base, challenge);
      const retry = await this.authorization(base, challenge.scheme === 'bearer' ? (challenge.scope ?? scope) : scope, authorization);
      // Basic credentials already refused, or none to send: asking again cannot help.
      if (retry === undefined || retry === authorization) throw this.denied(base, what, 401, said);
      authorization = retry;
      res = await this.follow(url, target, authorization, signal);
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

  /**
   * The Authorization header for a base URL, from the challenge it last sent. `refused` is what the
   * upstream just turned down: a cached token equal to it is dropped and a new one fetched.
   */
  private async authorization(base: string, scope: string, refused: string | undefined): Promise<string | undefined> {
    const challenge = this.challenges.get(base);
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') return this.basicCredentials();
    // An https registry naming a plain-http token service would have the credentials sent in the clear.
    if (this.config.username !== undefined && base.startsWith('https:') && challenge.realm.startsWith('http:'))
      throw new UpstreamInvalidError(
        this.namespace,
        `upstream ${this.namespace} (${base}) named a plain-http token realm (${challenge.realm.slice(0, 200)}): credentials are not sent in the clear`,
      );
    if (refused !== undefined) this.tokens.forget(challenge, scope, refused.slice('Bearer '.length));
    return `Bearer ${await this.tokens.get(challenge, scope)}`;
  }

  private basicCredentials(): string | undefined {
    if (this.config.username === undefined) return undefined;
    return `Basic ${Buffer.from(`${this.config.username}:${this.config.password ?? ''}`).toString('base64')}`;
  }

  /** Sends one request and follows its redirects, dropping Authorization once they leave the upstream's origins. */
  private async follow(
    start: URL,
    target: { method: 'GET' | 'HEAD'; accept?: string | undefined },
    authorization: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<http.IncomingMessage> {
    let url = start;
    let credentials = authorization;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'User-Agent': this.userAgent };
      if (target.accept) headers.Accept = target.accept;
      if (credentials !== undefined) headers.Authorization = credentials;
      const own = this.origins.has(url.origin);
      const agents = own ? this.ownAgents : this.foreignAgents;
      const started = this.now();
      let message: http.IncomingMessage;
      try {
        message = await send(url, {
          method: target.method,
          headers,
          timeoutMs: this.config.timeoutMs,
          agent: url.protocol === 'https:' ? agents.https : agents.http,
          signal,
        });
      } catch (err) {
        throw this.transportError(err, url);
      }
      const status = message.statusCode ?? 0;
      this.observe({ kind: 'request', status, ms: this.now() - started });
      const location = message.headers.location;
      if (!REDIRECT_STATUS.has(status) || location === undefined) return message;
      discard(message);
      if (hop >= MAX_REDIRECTS)
        throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} redirected ${start.pathname} more than ${MAX_REDIRECTS} times`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} redirected to an invalid URL`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:')
        throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} redirected to a ${next.protocol} URL`);
      // Credentials are for the registry, not for the storage or CDN it sends blobs from.
      if (next.origin !== url.origin) credentials = undefined;
      url = next;
    }
  }

  private async fetchToken(
    challenge: Extract<Challenge, { scheme: 'bearer' }>,
    scope: string,
  ): Promise<{ token: string; expiresInSeconds: number | undefined }> {
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw new UpstreamInvalidError(
        this.namespace,
        `upstream ${this.namespace} named an invalid token realm ${JSON.stringify(challenge.realm.slice(0, 200))}`,
      );
    }
    if (realm.protocol !== 'http:' && realm.protocol !== 'https:')
      throw new UpstreamInvalidError(this.namespace, `upstream ${this.namespace} named a token realm that is not http(s): ${realm.protocol}`);
    if (challenge.service !== undefined) realm.searchParams.set('service', challenge.service);
    if (scope !== '') realm.searchParams.append('scope', scope);
    const started = this.now();
    let res: http.IncomingMessage;
    try {
      res = await this.follow(realm, { method: 'GET', accept: 'application/json' }, this.basicCredentials(), undefined);
    } catch (err) {
      if (err instanceof UpstreamUnavailableError)
        throw new UpstreamUnavailableError(this.namespace, 'token-endpoint', `token service of upstream ${this.namespace} unavailable: ${err.message}`);
      throw err;
    }
    const status = res.statusCode ?? 0;
    this.observe({ kind: 'token', status, ms: this.now() - started });
    if (status !== 200) {
      const said = await errorSnippet(res);
      const who = this.config.username === undefined ? 'anonymous access' : `the credentials of ${JSON.stringify(this.config.username)}`;
      if (status === 401 || status === 403)
        throw new UpstreamDeniedError(
          this.namespace,
          `token service of upstream ${this.namespace} (${realm.origin}) refused ${who} (${status})${said}`,
          status,
        );
      if (status === 429 || status >= 500) {
        const retryAfterMs = parseRetryAfter(firstHeader(res.headers['retry-after']), this.now());
        throw new UpstreamUnavailableError(
          this.namespace,
          'token-endpoint',
          `token service of upstream ${this.namespace} (${realm.origin}) answered ${status}${said}`,
          retryAfterMs === undefined ? undefined : Math.ceil(retryAfterMs / 1000),
          status,
        );
      }
      throw new UpstreamInvalidError(this.namespace, `token service of upstream ${this.namespace} (${realm.origin}) answered ${status}${said}`);
    }
    let body: unknown;
    try {
      body = JSON.parse((await readBody(res, 1024 * 1024)).toString('utf8'));
    } catch {
      throw new UpstreamInvalidError(this.namespace, `token service of upstream ${this.namespace} (${realm.origin}) sent no JSON token`);
    }
    const fields = (typeof body === 'object' && body !== null ? body : {}) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof fields.token === 'string' && fields.token !== '' ? fields.token : fields.access_token;
    if (typeof token !== 'string' || token === '' || /[\r\n]/.test(token))
      throw new UpstreamInvalidError(this.namespace, `token service of upstream ${this.namespace} (${realm.origin}) sent no token`);
    const expires = typeof fields.expires_in === 'number' && fields.expires_in > 0 ? fields.expires_in : undefined;
    return { token, expiresInSeconds: expires };
  }

  private transportError(err: unknown, url: URL): unknown {
    if (!(err instanceof TransportError)) return err;
    const origin = this.origins.has(url.origin) ? url.origin : `${url.origin}, redirected to`;
    return new UpstreamUnavailableError(this.namespace, err.kind, `upstream ${this.namespace} (${origin}): ${err.message}`);
  }

  private denied(base: string, what: string, status: number, said: string): UpstreamDeniedError {
    const who = this.config.username === undefined ? 'anonymous access' : `the credentials of ${JSON.stringify(this.config.username)}`;
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

function parseDigestOrUndefined(value: string): ParsedDigest | undefined {
  try {
    return parseDigest(value.trim());
  } catch {
    return undefined;
  }
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function embeddedMediaType(bytes: Buffer): string | undefined {
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'));
    const mediaType = (parsed as { mediaType?: unknown } | null)?.mediaType;
    return typeof mediaType === 'string' && mediaType !== '' ? mediaType : undefined;
  } catch {
    return undefined;
  }
}
