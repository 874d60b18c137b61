import type http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseRetryAfter } from '../events/sender.js';
import { parseChallenge } from '../proxy/challenge.js';
import { LimiterWaitExceededError, UpstreamLimiter, type Release } from '../proxy/limiter.js';
import { discard, errorSnippet, type SendMethod } from '../proxy/upstream-http.js';
import { describeCredentials, firstHeader, MAX_REDIRECTS, RemoteRegistryHttp, type SendErrors, type TokenErrors } from '../remote-registry-http.js';
import { ReplicationError, retryableStatus } from './errors.js';
import type { ResolvedRegistry } from './registries.js';

/*
 * HTTP to one configured registry, the way replication needs it: any method, a body, Docker token auth
 * with the scopes each request names (several for a cross-repository mount), Basic, Berth's own limiter,
 * fail-over across the registry's URLs, redirects of reads followed without credentials once they leave
 * the registry, and a 429 waited out as its Retry-After says (a few times) before it is the caller's.
 * Built from the proxy's pieces (challenge, limiter) and the sender both share (remote-registry-http);
 * the answer's status is the caller's to judge, except transport failures, which become a retryable
 * ReplicationError.
 */

export { firstHeader };

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
  /** Challenges (by origin), tokens, Basic, redirects: shared with the proxy, worded here. */
  private readonly http: RemoteRegistryHttp;
  private readonly now: () => number;

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
    this.http = new RemoteRegistryHttp(config, {
      now: this.now,
      observe: (event) => this.observe(event),
      tokenErrors: this.tokenErrors(),
    });
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
      said = `refused ${describeCredentials(this.config.username)}${said}`;
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
    this.http.close();
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
    const errors = this.sendErrors(req.repo, req.operation);
    try {
      let authorization = await this.http.authorization(url.origin, req.scope, undefined, errors);
      let answer = await this.http.follow(url, req, authorization, signal, errors);
      if (answer.res.statusCode === 401) {
        const challenge = parseChallenge(answer.res.headers['www-authenticate']);
        if (challenge !== undefined) {
          this.http.remember(url.origin, challenge);
          const retry = await this.http.authorization(url.origin, req.scope, authorization, errors);
          // Basic credentials already refused, or none to send: asking again cannot help.
          if (retry !== undefined && retry !== authorization) {
            discard(answer.res);
            authorization = retry;
            answer = await this.http.follow(url, req, authorization, signal, errors);
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

  /** Replication's words for what can go wrong sending one request of `operation`. */
  private sendErrors(repo: string | undefined, operation: string): SendErrors {
    const fail = (said: string, retryable: boolean, status?: number) =>
      new ReplicationError({ registry: this.config.name, repo, operation, status, said, retryable });
    return {
      transport: (err, url) => fail(`${url.origin}: ${err.message}`, true),
      redirect: (problem, _start, status) => {
        if (problem.kind === 'too-many') return fail(`redirected more than ${MAX_REDIRECTS} times`, false, status);
        if (problem.kind === 'invalid-url') return fail('redirected to an invalid URL', false, status);
        return fail(`redirected to a ${problem.protocol} URL`, false, status);
      },
      plainHttpRealm: (_origin, realm) =>
        fail(`the registry named a plain-http token realm (${realm.slice(0, 200)}): credentials are not sent in the clear`, false),
    };
  }

  /** …and for a token login, which belongs to no repository. */
  private tokenErrors(): TokenErrors {
    const fail = (said: string, retryable: boolean, status?: number) =>
      new ReplicationError({ registry: this.config.name, repo: undefined, operation: 'token login', status, said, retryable });
    return {
      ...this.sendErrors(undefined, 'token login'),
      realm: (problem) =>
        problem.kind === 'invalid'
          ? fail(`the registry named an invalid token realm ${JSON.stringify(problem.realm.slice(0, 200))}`, false)
          : fail(`the registry named a token realm that is not http(s): ${problem.protocol}`, false),
      refused: ({ status, origin, scope, said }) =>
        fail(`token service ${origin} refused ${describeCredentials(this.config.username)} for ${scope}${said}`, retryableStatus(status), status),
      noToken: (origin, problem) => fail(`token service ${origin} ${problem}`, false),
    };
  }
}
