import { createHash } from 'node:crypto';
import type http from 'node:http';
import { berthVersion } from '../operations/version.js';
import { parseRetryAfter } from './events/sender.js';
import type { Challenge } from './proxy/challenge.js';
import { parseDigest, type ParsedDigest } from './references.js';
import { TokenCache, type BearerChallenge } from './proxy/token-cache.js';
import { discard, errorSnippet, makeAgents, readBody, send, TransportError, type SendMethod } from './proxy/upstream-http.js';

/*
 * The part of talking to another registry that the pull-through cache and replication share: the
 * challenge each base last sent, Docker token login and Basic credentials, and one request sent with
 * its redirects followed (credentials dropped once they leave the registry). The two callers word and
 * type their errors differently (the proxy's Upstream… errors, replication's ReplicationError), so every
 * failure here is made by the caller's RemoteRegistryErrors from the facts alone.
 */

export const MAX_REDIRECTS = 5;
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);

export type RedirectProblem = { kind: 'too-many' } | { kind: 'invalid-url' } | { kind: 'protocol'; protocol: string };

/** What one request can fail with before the caller sees an answer. */
export interface SendErrors {
  /** No connection or no answer in time; `own`: `url` is one of the registry's origins, not where it redirected. */
  transport(err: TransportError, url: URL, own: boolean): unknown;
  /** A redirect Berth does not follow; `status` is the redirecting answer's. */
  redirect(problem: RedirectProblem, start: URL, status: number): unknown;
  /** An https registry named a plain-http token realm while Berth has credentials to send there. */
  plainHttpRealm(key: string, realm: string): unknown;
}

export interface TokenRefusal {
  status: number;
  /** The token service's origin. */
  origin: string;
  scope: string;
  /** What it said (errorSnippet: empty or `: …`). */
  said: string;
  retryAfterMs: number | undefined;
}

/** A token login's failures; its requests fail as SendErrors too. */
export interface TokenErrors extends SendErrors {
  realm(problem: { kind: 'invalid'; realm: string } | { kind: 'protocol'; protocol: string }): unknown;
  refused(refusal: TokenRefusal): unknown;
  /** An answer of 200 without a usable token: `sent no JSON token` or `sent no token`. */
  noToken(origin: string, problem: 'sent no JSON token' | 'sent no token'): unknown;
}

/** What a proxy upstream and a replication registry both resolve to (the password read, non-enumerable). */
/** A proxy upstream or a replication registry, resolved at start-up. */
export interface RemoteRegistryConnection {
  /** Base URLs without a trailing slash, in fail-over order. */
  readonly urls: readonly string[];
  /** PEM text of caFile (non-enumerable, only because it is long). */
  readonly ca: string | undefined;
  readonly username: string | undefined;
  /** The password (non-enumerable). Never log it. */
  readonly password: string | undefined;
  readonly timeoutMs: number;
  readonly maxConcurrent: number;
  readonly requestsPerSecond: number;
  readonly maxWaitMs: number;
}

export interface RemoteRegistryHttpOptions {
  now: () => number;
  observe: (event: { kind: 'request' | 'token'; status: number; ms: number }) => void;
  tokenErrors: TokenErrors;
  /** Send a token scope as one `scope` parameter as given, rather than one per space-separated scope. */
  oneScopeParam?: boolean | undefined;
}

export interface OutgoingRequest {
  method: SendMethod;
  headers?: Record<string, string> | undefined;
  body?: Buffer | undefined;
}

export class RemoteRegistryHttp {
  private readonly tokens: TokenCache;
  /** The last challenge each base (an origin or a configured URL) sent, so later requests send credentials at once. */
  private readonly challenges = new Map<string, Challenge>();
  private readonly ownAgents: ReturnType<typeof makeAgents>;
  private readonly foreignAgents: ReturnType<typeof makeAgents>;
  private readonly origins: Set<string>;
  private readonly userAgent = `Berth/${berthVersion()}`;

  constructor(
    private readonly connection: RemoteRegistryConnection,
    private readonly options: RemoteRegistryHttpOptions,
  ) {
    this.tokens = new TokenCache({ now: options.now, fetch: (challenge, scope) => this.fetchToken(challenge, scope) });
    // Two sockets more than the cap: token fetches and redirects happen while a request holds its slot.
    this.ownAgents = makeAgents({ ca: connection.ca, maxSockets: connection.maxConcurrent + 2 });
    this.foreignAgents = makeAgents({ maxSockets: connection.maxConcurrent + 2 });
    this.origins = new Set(connection.urls.map((url) => new URL(url).origin));
  }

  /** Whether `url` is on one of the registry's own origins (not a storage or CDN it redirected to). */
  isOwn(url: URL): boolean {
    return this.origins.has(url.origin);
  }

  /** Keeps the challenge `key` just sent for the requests that follow. */
  remember(key: string, challenge: Challenge): void {
    this.challenges.set(key, challenge);
  }

  /** The Authorization header for a base, from the challenge it last sent; `refused` is what it just turned down. */
  async authorization(key: string, scope: string, refused: string | undefined, errors: Pick<SendErrors, 'plainHttpRealm'>): Promise<string | undefined> {
    const challenge = this.challenges.get(key);
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') return this.basicCredentials();
    // An https registry naming a plain-http token service would have the credentials sent in the clear.
    if (this.connection.username !== undefined && key.startsWith('https:') && challenge.realm.startsWith('http:'))
      throw errors.plainHttpRealm(key, challenge.realm);
    if (refused !== undefined) this.tokens.forget(challenge, scope, refused.slice('Bearer '.length));
    return `Bearer ${await this.tokens.get(challenge, scope)}`;
  }

  /** Sends one request; a read follows redirects, dropping Authorization once they leave the registry's origin. */
  async follow(
    start: URL,
    req: OutgoingRequest,
    authorization: string | undefined,
    signal: AbortSignal | undefined,
    errors: SendErrors,
  ): Promise<{ res: http.IncomingMessage; url: URL }> {
    let url = start;
    let credentials = authorization;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'User-Agent': this.userAgent, ...req.headers };
      if (credentials !== undefined) headers.Authorization = credentials;
      const own = this.isOwn(url);
      const agents = own ? this.ownAgents : this.foreignAgents;
      const started = this.options.now();
      let res: http.IncomingMessage;
      try {
        res = await send(url, {
          method: req.method,
          headers,
          body: req.body,
          timeoutMs: this.connection.timeoutMs,
          agent: url.protocol === 'https:' ? agents.https : agents.http,
          signal,
        });
      } catch (err) {
        if (!(err instanceof TransportError)) throw err;
        throw errors.transport(err, url, own);
      }
      const status = res.statusCode ?? 0;
      this.options.observe({ kind: 'request', status, ms: this.options.now() - started });
      const location = res.headers.location;
      const isRead = req.method === 'GET' || req.method === 'HEAD';
      if (!isRead || !REDIRECT_STATUS.has(status) || location === undefined) return { res, url };
      discard(res);
      if (hop >= MAX_REDIRECTS) throw errors.redirect({ kind: 'too-many' }, start, status);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw errors.redirect({ kind: 'invalid-url' }, start, status);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw errors.redirect({ kind: 'protocol', protocol: next.protocol }, start, status);
      // Credentials are for the registry, not for the storage or CDN it sends blobs from.
      if (next.origin !== url.origin) credentials = undefined;
      url = next;
    }
  }

  /** Closes kept connections. */
  close(): void {
    for (const agents of [this.ownAgents, this.foreignAgents]) {
      agents.http.destroy();
      agents.https.destroy();
    }
  }

  private basicCredentials(): string | undefined {
    if (this.connection.username === undefined) return undefined;
    return `Basic ${Buffer.from(`${this.connection.username}:${this.connection.password ?? ''}`).toString('base64')}`;
  }

  private async fetchToken(challenge: BearerChallenge, scope: string): Promise<{ token: string; expiresInSeconds: number | undefined }> {
    const errors = this.options.tokenErrors;
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw errors.realm({ kind: 'invalid', realm: challenge.realm });
    }
    if (realm.protocol !== 'http:' && realm.protocol !== 'https:') throw errors.realm({ kind: 'protocol', protocol: realm.protocol });
    if (challenge.service !== undefined) realm.searchParams.set('service', challenge.service);
    if (this.options.oneScopeParam) {
      if (scope !== '') realm.searchParams.append('scope', scope);
    } else for (const one of scope.split(' ')) if (one !== '') realm.searchParams.append('scope', one);
    const started = this.options.now();
    const { res } = await this.follow(realm, { method: 'GET', headers: { Accept: 'application/json' } }, this.basicCredentials(), undefined, errors);
    const status = res.statusCode ?? 0;
    this.options.observe({ kind: 'token', status, ms: this.options.now() - started });
    if (status !== 200) {
      const said = await errorSnippet(res);
      const retryAfterMs = parseRetryAfter(firstHeader(res.headers['retry-after']), this.options.now());
      throw errors.refused({ status, origin: realm.origin, scope, said, retryAfterMs });
    }
    let body: unknown;
    try {
      body = JSON.parse((await readBody(res, 1024 * 1024)).toString('utf8'));
    } catch {
      throw errors.noToken(realm.origin, 'sent no JSON token');
    }
    const fields = (typeof body === 'object' && body !== null ? body : {}) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof fields.token === 'string' && fields.token !== '' ? fields.token : fields.access_token;
    if (typeof token !== 'string' || token === '' || /[\r\n]/.test(token)) throw errors.noToken(realm.origin, 'sent no token');
    const expires = typeof fields.expires_in === 'number' && fields.expires_in > 0 ? fields.expires_in : undefined;
    return { token, expiresInSeconds: expires };
  }
}

/** Who Berth was to the registry, for messages: never the password. */
export function describeCredentials(username: string | undefined): string {
  return username === undefined ? 'anonymous access' : `the credentials of ${JSON.stringify(username)}`;
}

export function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The media type of an answer's body, without parameters. */
export function mediaTypeOf(res: http.IncomingMessage): string | undefined {
  const type = res.headers['content-type']?.split(';')[0]?.trim();
  return type === '' ? undefined : type;
}

export function digestOf(algorithm: ParsedDigest['algorithm'], bytes: Buffer): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

export function parseDigestOrUndefined(value: string): ParsedDigest | undefined {
  try {
    return parseDigest(value.trim());
  } catch {
    return undefined;
  }
}

export function embeddedMediaType(bytes: Buffer): string | undefined {
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'));
    const mediaType = (parsed as { mediaType?: unknown } | null)?.mediaType;
    return typeof mediaType === 'string' && mediaType !== '' ? mediaType : undefined;
  } catch {
    return undefined;
  }
}
