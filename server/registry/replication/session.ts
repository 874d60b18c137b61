import type http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { berthVersion } from '../../operations/version.js';
import { parseRetryAfter } from '../events/sender.js';
import { parseChallenge, type Challenge } from '../proxy/challenge.js';
import { LimiterWaitExceededError, UpstreamLimiter, type Release } from '../proxy/limiter.js';
import { TokenCache, type BearerChallenge } from '../proxy/token-cache.js';
import { discard, errorSnippet, makeAgents, readBody, send, TransportError, type SendMethod } from '../proxy/upstream-http.js';
import { ReplicationError, retryableStatus } from './errors.js';
import type { ResolvedRegistry } from './registries.js';

/*
 * HTTP to one configured registry, the way replication needs it: any method, a body, Docker token auth
 * with the scopes each request names (several for a cross-repository mount), Basic, Berth's own limiter,
 * fail-over across the registry's URLs, redirects of reads followed without credentials once they leave
 * the registry, and a 429 waited out as its Retry-After says (a few times) before it is the caller's.
 * Built from the proxy's pieces (send, challenge, token cache, limiter); the answer's status is the
 * caller's to judge, except transport failures, which become a retryable ReplicationError.
 */

const MAX_REDIRECTS = 5;
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
/** 429s waited out per request before the caller sees one. */
const MAX_THROTTLED = 3;
/** A Retry-After longer than this is not waited in-line: the run fails retryable and tries later. */
const MAX_RETRY_AFTER_MS = 60_000;
const DEFAULT_RETRY_AFTER_MS = 1000;

export interface SessionRequest {
  method: SendMethod;
  /** A path with query below each base URL (`/v2/…`), tried on the URLs in turn; or `url`, sent there only (an upload's Location). */
  path?: string | undefined;
  url?: URL | undefined;
  /** Token scopes, space-separated (`repository:a:pull,push repository:b:pull`). */
  scope: string;
  headers?: Record<string, string> | undefined;
  body?: Buffer | undefined;
  /** For error messages. */
  repo: string | undefined;
  operation: string;
}

export interface SessionAnswer {
  res: http.IncomingMessage;
  /** Where the answer came from (after redirects): relative Locations resolve against it. */
  url: URL;
}

export interface SessionEvent {
  kind: 'request' | 'token' | 'failover' | 'throttled';
  status?: number | undefined;
  ms: number;
}

export interface SessionOptions {
  observer?: ((event: SessionEvent) => void) | undefined;
  now?: (() => number) | undefined;
}

export class RegistrySession {
  private readonly limiter: UpstreamLimiter;
  private readonly tokens: TokenCache;
  /** The last challenge each origin sent, so later requests send credentials at once. */
  private readonly challenges = new Map<string, Challenge>();
  private readonly ownAgents: ReturnType<typeof makeAgents>;
  private readonly foreignAgents: ReturnType<typeof makeAgents>;
  private readonly origins: Set<string>;
  private readonly now: () => number;
  private readonly userAgent = `Berth/${berthVersion()}`;

  constructor(
    readonly config: ResolvedRegistry,
    private readonly options: SessionOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.limiter = new UpstreamLimiter({
      maxConcurrent: config.maxConcurrent,
      requestsPerSecond: config.requestsPerSecond,
      maxWaitMs: config.maxWaitMs,
    });
    this.tokens = new TokenCache({ now: this.now, fetch: (challenge, scope) => this.fetchToken(challenge, scope) });
    // Two sockets more than the cap: token fetches happen while a request holds its slot.
    this.ownAgents = makeAgents({ ca: config.ca, maxSockets: config.maxConcurrent + 2 });
    this.foreignAgents = makeAgents({ maxSockets: config.maxConcurrent + 2 });
    this.origins = new Set(config.urls.map((url) => new URL(url).origin));
  }

  /**
   * Sends the request and resolves with the answer once its headers arrive. The caller must read or
   * discard the body: the limiter slot is held until the response closes.
   */
  async request(req: SessionRequest, signal: AbortSignal): Promise<SessionAnswer> {
    for (let throttled = 0; ; throttled++) {
      const answer = await this.failingOver(req, signal);
      if (answer.res.statusCode !== 429 || throttled >= MAX_THROTTLED) return answer;
      const asked = parseRetryAfter(firstHeader(answer.res.headers['retry-after']), this.now()) ?? DEFAULT_RETRY_AFTER_MS;
      if (asked > MAX_RETRY_AFTER_MS) return answer;
      discard(answer.res);
      this.observe({ kind: 'throttled', status: 429, ms: asked });
      await sleep(asked, undefined, { signal });
    }
  }

  /** A ReplicationError for an answer the caller does not accept, quoting the registry's error body. */
  async failure(req: Pick<SessionRequest, 'repo' | 'operation' | 'method'>, res: http.IncomingMessage): Promise<ReplicationError> {
    const status = res.statusCode ?? 0;
    let said: string;
    if (req.method === 'HEAD') {
      discard(res, true);
      said = '';
    } else said = await errorSnippet(res);
    if (status === 401 || status === 403) {
      const who = this.config.username === undefined ? 'anonymous access' : `the credentials of ${JSON.stringify(this.config.username)}`;
      said = `refused ${who}${said}`;
    }
    const retryAfterMs = retryableStatus(status) ? parseRetryAfter(firstHeader(res.headers['retry-after']), this.now()) : undefined;
    return new ReplicationError({
      registry: this.config.name,
      repo: req.repo,
      operation: req.operation,
      status,
      said,
      retryable: retryableStatus(status),
      retryAfterMs,
    });
  }

  /** Closes kept connections and fails requests still waiting in line. */
  close(): void {
    this.limiter.close(new ReplicationError({ registry: this.config.name, repo: undefined, operation: 'close', said: 'closing', retryable: true }));
    for (const agents of [this.ownAgents, this.foreignAgents]) {
      agents.http.destroy();
      agents.https.destroy();
    }
  }

  /** A path goes to each base URL while the previous one fails to connect or answers 5xx; the last answer or error wins. */
  private async failingOver(req: SessionRequest, signal: AbortSignal): Promise<SessionAnswer> {
    if (req.url !== undefined) return this.exchange(req.url, req, signal);
    const path = req.path ?? '/v2/';
    let last: unknown;
    for (const [i, base] of this.config.urls.entries()) {
      if (i > 0) this.observe({ kind: 'failover', ms: 0 });
      const isLast = i === this.config.urls.length - 1;
      try {
        const answer = await this.exchange(new URL(`${base}${path}`), req, signal);
        if (isLast || (answer.res.statusCode ?? 0) < 500) return answer;
        discard(answer.res);
        last = undefined;
      } catch (err) {
        if (!(err instanceof ReplicationError) || !err.retryable || signal.aborted || isLast) throw err;
        last = err;
      }
    }
    throw last;
  }

  /** One exchange with its 401 retry; the slot is held from the first byte sent until the answer closes. */
  private async exchange(url: URL, req: SessionRequest, signal: AbortSignal): Promise<SessionAnswer> {
    const release = await this.slot(req, signal);
    try {
      let authorization = await this.authorization(url.origin, req.scope, undefined, req);
      let answer = await this.follow(url, req, authorization, signal);
      if (answer.res.statusCode === 401) {
        const challenge = parseChallenge(answer.res.headers['www-authenticate']);
        if (challenge !== undefined) {
          this.challenges.set(url.origin, challenge);
          const retry = await this.authorization(url.origin, req.scope, authorization, req);
          // Basic credentials already refused, or none to send: asking again cannot help.
          if (retry !== undefined && retry !== authorization) {
            discard(answer.res);
            authorization = retry;
            answer = await this.follow(url, req, authorization, signal);
          }
        }
      }
      answer.res.once('close', release);
      return answer;
    } catch (err) {
      release();
      throw err;
    }
  }

  private async slot(req: SessionRequest, signal: AbortSignal): Promise<Release> {
    try {
      const { release, waitedMs } = await this.limiter.acquire(signal);
      if (waitedMs > 0) this.observe({ kind: 'throttled', ms: waitedMs });
      return release;
    } catch (err) {
      if (!(err instanceof LimiterWaitExceededError)) throw err;
      throw new ReplicationError({
        registry: this.config.name,
        repo: req.repo,
        operation: req.operation,
        said: `waited ${err.waitedMs} ms for one of Berth's ${this.config.maxConcurrent} slots to this registry (maxConcurrent, requestsPerSecond, maxWaitSeconds)`,
        retryable: true,
      });
    }
  }

  private observe(event: SessionEvent): void {
    this.options.observer?.(event);
  }

  /** The Authorization header for an origin, from the challenge it last sent; `refused` is what it just turned down. */
  private async authorization(origin: string, scope: string, refused: string | undefined, req: SessionRequest): Promise<string | undefined> {
    const challenge = this.challenges.get(origin);
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') return this.basicCredentials();
    // An https registry naming a plain-http token service would have the credentials sent in the clear.
    if (this.config.username !== undefined && origin.startsWith('https:') && challenge.realm.startsWith('http:'))
      throw new ReplicationError({
        registry: this.config.name,
        repo: req.repo,
        operation: req.operation,
        said: `the registry named a plain-http token realm (${challenge.realm.slice(0, 200)}): credentials are not sent in the clear`,
        retryable: false,
      });
    if (refused !== undefined) this.tokens.forget(challenge, scope, refused.slice('Bearer '.length));
    return `Bearer ${await this.tokens.get(challenge, scope)}`;
  }

  private basicCredentials(): string | undefined {
    if (this.config.username === undefined) return undefined;
    return `Basic ${Buffer.from(`${this.config.username}:${this.config.password ?? ''}`).toString('base64')}`;
  }

  /** Sends one request; a read follows redirects, dropping Authorization once they leave the registry's origins. */
  private async follow(
    start: URL,
    req: Pick<SessionRequest, 'method' | 'headers' | 'body' | 'repo' | 'operation'>,
    authorization: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<SessionAnswer> {
    let url = start;
    let credentials = authorization;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'User-Agent': this.userAgent, ...req.headers };
      if (credentials !== undefined) headers.Authorization = credentials;
      const agents = this.origins.has(url.origin) ? this.ownAgents : this.foreignAgents;
      const started = this.now();
      let res: http.IncomingMessage;
      try {
        res = await send(url, {
          method: req.method,
          headers,
          body: req.body,
          timeoutMs: this.config.timeoutMs,
          agent: url.protocol === 'https:' ? agents.https : agents.http,
          signal,
        });
      } catch (err) {
        if (!(err instanceof TransportError)) throw err;
        throw new ReplicationError({
          registry: this.config.name,
          repo: req.repo,
          operation: req.operation,
          said: `${url.origin}: ${err.message}`,
          retryable: true,
        });
      }
      const status = res.statusCode ?? 0;
      this.observe({ kind: 'request', status, ms: this.now() - started });
      const location = res.headers.location;
      const isRead = req.method === 'GET' || req.method === 'HEAD';
      if (!isRead || !REDIRECT_STATUS.has(status) || location === undefined) return { res, url };
      discard(res);
      const invalid = (said: string) =>
        new ReplicationError({ registry: this.config.name, repo: req.repo, operation: req.operation, status, said, retryable: false });
      if (hop >= MAX_REDIRECTS) throw invalid(`redirected more than ${MAX_REDIRECTS} times`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw invalid('redirected to an invalid URL');
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw invalid(`redirected to a ${next.protocol} URL`);
      // Credentials are for the registry, not for the storage or CDN it sends blobs from.
      if (next.origin !== url.origin) credentials = undefined;
      url = next;
    }
  }

  private async fetchToken(challenge: BearerChallenge, scope: string): Promise<{ token: string; expiresInSeconds: number | undefined }> {
    const fail = (said: string, retryable: boolean, status?: number) =>
      new ReplicationError({ registry: this.config.name, repo: undefined, operation: 'token login', status, said, retryable });
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw fail(`the registry named an invalid token realm ${JSON.stringify(challenge.realm.slice(0, 200))}`, false);
    }
    if (realm.protocol !== 'http:' && realm.protocol !== 'https:') throw fail(`the registry named a token realm that is not http(s): ${realm.protocol}`, false);
    if (challenge.service !== undefined) realm.searchParams.set('service', challenge.service);
    for (const one of scope.split(' ')) if (one !== '') realm.searchParams.append('scope', one);
    const started = this.now();
    const { res } = await this.follow(
      realm,
      { method: 'GET', headers: { Accept: 'application/json' }, repo: undefined, operation: 'token login' },
      this.basicCredentials(),
      undefined,
    );
    const status = res.statusCode ?? 0;
    this.observe({ kind: 'token', status, ms: this.now() - started });
    if (status !== 200) {
      const said = await errorSnippet(res);
      const who = this.config.username === undefined ? 'anonymous access' : `the credentials of ${JSON.stringify(this.config.username)}`;
      throw fail(`token service ${realm.origin} refused ${who} for ${scope}${said}`, retryableStatus(status), status);
    }
    let body: unknown;
    try {
      body = JSON.parse((await readBody(res, 1024 * 1024)).toString('utf8'));
    } catch {
      throw fail(`token service ${realm.origin} sent no JSON token`, false);
    }
    const fields = (typeof body === 'object' && body !== null ? body : {}) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof fields.token === 'string' && fields.token !== '' ? fields.token : fields.access_token;
    if (typeof token !== 'string' || token === '' || /[\r\n]/.test(token)) throw fail(`token service ${realm.origin} sent no token`, false);
    const expires = typeof fields.expires_in === 'number' && fields.expires_in > 0 ? fields.expires_in : undefined;
    return { token, expiresInSeconds: expires };
  }
}

export function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
