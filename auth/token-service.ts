import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { resolveSubject } from './identities.js';
import type { KeyStore } from './keys.js';
import { PasswordQueueFullError } from './password-pool.js';
import type { LoginLimiter } from './rate-limit.js';
import type { RobotStore } from './robots.js';
import type { Policy, Subject } from './rules.js';
import { formatScope, parseScopes } from './scope.js';
import { TokenError } from './token-errors.js';
import type { TokenIssuer } from './token.js';
import type { AuthFailureReason } from './types.js';
import { ROBOT_PREFIX, type UserStore } from './users.js';

export interface TokenServiceDeps {
  tokenPath: string;
  jwksPath: string;
  service: string;
  issuer: TokenIssuer;
  keys: KeyStore;
  users: UserStore;
  robots: RobotStore;
  policy: Policy;
  limiter: LoginLimiter;
  onFailure?: (failure: { actor: string; reason: AuthFailureReason; request: { ip: string; id: string } }) => void;
}

interface Authenticated {
  subject: Subject;
  /** The token `sub`: user name, `robot+<name>`, or empty for anonymous. */
  sub: string;
  /** Refresh tokens carry it: password fingerprint or robot id. */
  binding: string;
}

type LoginOutcome = { ok: true; who: Authenticated } | { ok: false; retryAfter?: number; why?: string };

const FORM = 'application/x-www-form-urlencoded';

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache');
}

function decodeBasic(header: string | undefined): { username: string; password: string } | undefined {
  const m = header === undefined ? null : /^Basic[ ]+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

function one(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return undefined;
}

function many(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/**
 * The token endpoint (GET: Docker token flow with Basic or anonymous; POST: OAuth2 password and
 * refresh_token grants) and the JWKS endpoint. Register it with `app.register(tokenRoutes)`; it
 * keeps its form-body parser to itself.
 */
export function tokenServicePlugin(deps: TokenServiceDeps): FastifyPluginAsync {
  async function login(username: string, password: string, address: string, request: FastifyRequest): Promise<LoginOutcome> {
    // Counted before the password is checked, so concurrent guesses cannot all get through.
    const admission = await deps.limiter.admit(username, address);
    if (!admission.ok) {
      deps.onFailure?.({ actor: username, reason: 'rate_limited', request });
      // debug, not warn: a flood would otherwise write a line per refused attempt; the audit sink has them.
      request.log.debug({ user: username, address, limit: admission.limit }, 'login refused: too many attempts');
      return { ok: false, retryAfter: admission.retryAfter, why: 'too many login attempts, try again later' };
    }
    let who: Authenticated | undefined;
    try {
      if (username.startsWith(ROBOT_PREFIX)) {
        const name = username.slice(ROBOT_PREFIX.length);
        const r = await deps.robots.verify(name, password);
        if (r.ok) who = { subject: { kind: 'robot', name, robot: r.robot }, sub: username, binding: r.robot.id };
      } else {
        const r = await deps.users.verify(username, password);
        if (r.ok) who = { subject: { kind: 'user', name: username }, sub: username, binding: r.fingerprint };
      }
    } catch (err) {
      // Never checked: the attempt does not count against anyone.
      await admission.attempt.cancel();
      if (err instanceof PasswordQueueFullError) {
        deps.onFailure?.({ actor: username, reason: 'rate_limited', request });
        return { ok: false, retryAfter: err.retryAfterSeconds, why: 'too many logins are being checked right now, try again shortly' };
      }
      throw err;
    }
    if (!who) {
      await admission.attempt.fail();
      request.log.warn({ user: username, address }, 'failed login');
      deps.onFailure?.({ actor: username, reason: 'bad_credentials', request });
      return { ok: false };
    }
    await admission.attempt.succeed();
    return { ok: true, who };
  }

  async function issue(who: Authenticated, scopes: string[], request: FastifyRequest) {
    const requested = parseScopes(scopes);
    const granted = await deps.policy.grant(who.subject, requested);
    const access = await deps.issuer.issueAccess(who.sub, granted);
    request.log.info({ sub: who.sub, scope: granted.map(formatScope).join(' ') }, 'token issued');
    return { access, granted };
  }

  function tooMany(retryAfter: number, why: string): TokenError {
    return new TokenError({ kind: 'throttled', retryAfterSeconds: retryAfter }, why);
  }

  function oauthError(error: 'invalid_request' | 'invalid_grant' | 'unsupported_grant_type', description: string): TokenError {
    return new TokenError({ kind: 'oauth', error }, description);
  }

  function wrongService(service: string | undefined): boolean {
    return service !== undefined && service !== '' && service !== deps.service;
  }

  return async function tokenRoutes(app: FastifyInstance): Promise<void> {
    if (app.hasContentTypeParser(FORM)) app.removeContentTypeParser(FORM);
    app.addContentTypeParser(FORM, { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
      done(null, new URLSearchParams(body as string));
    });

    app.get(deps.jwksPath, async (_request, reply) => {
      return reply.header('Cache-Control', 'public, max-age=60').send(await deps.keys.jwks());
    });

    app.get(deps.tokenPath, async (request, reply) => {
      const q = request.query as Record<string, unknown>;
      if (wrongService(one(q.service))) {
        throw new TokenError({ kind: 'unknown_service' }, `unknown service; this registry is ${JSON.stringify(deps.service)}`);
      }
      let who: Authenticated = { subject: { kind: 'anonymous' }, sub: '', binding: '' };
      const header = request.headers.authorization;
      const basic = decodeBasic(header);
      if (!basic && header !== undefined && /^Basic\b/i.test(header)) {
        throw new TokenError({ kind: 'malformed_basic' }, 'malformed Basic credentials');
      }
      if (basic) {
        const outcome = await login(basic.username, basic.password, request.ip, request);
        if (!outcome.ok) {
          if (outcome.retryAfter) throw tooMany(outcome.retryAfter, outcome.why ?? 'too many login attempts, try again later');
          throw new TokenError({ kind: 'bad_credentials', realm: deps.service }, 'incorrect username or password');
        }
        who = outcome.who;
      }
      const { access } = await issue(who, many(q.scope), request);
      const body: Record<string, unknown> = {
        token: access.token,
        access_token: access.token,
        expires_in: access.expiresIn,
        issued_at: access.issuedAt,
      };
      if (one(q.offline_token) === 'true' && who.sub !== '') body.refresh_token = await deps.issuer.issueRefresh(who.sub, who.binding);
      return noStore(reply).send(body);
    });

    app.post(deps.tokenPath, async (request, reply) => {
      const form = request.body instanceof URLSearchParams ? request.body : undefined;
      if (!form) throw oauthError('invalid_request', `expected a ${FORM} body`);
      const service = form.get('service') ?? undefined;
      if (wrongService(service)) throw oauthError('invalid_request', `unknown service; this registry is ${JSON.stringify(deps.service)}`);
      const grantType = form.get('grant_type');
      let who: Authenticated;
      let refreshToken: string | undefined;
      if (grantType === 'password') {
        const username = form.get('username');
        const password = form.get('password');
        if (!username || password === null) throw oauthError('invalid_request', 'username and password are required');
        const outcome = await login(username, password, request.ip, request);
        if (!outcome.ok) {
          if (outcome.retryAfter) throw tooMany(outcome.retryAfter, outcome.why ?? 'too many login attempts, try again later');
          throw oauthError('invalid_grant', 'incorrect username or password');
        }
        who = outcome.who;
        if (form.get('access_type') === 'offline') refreshToken = await deps.issuer.issueRefresh(who.sub, who.binding);
      } else if (grantType === 'refresh_token') {
        const given = form.get('refresh_token');
        const claims = given ? await deps.issuer.verifyRefresh(given) : undefined;
        const subject = claims ? await resolveSubject(deps.users, deps.robots, claims.subject, claims.binding) : undefined;
        if (!given || !claims || !subject) {
          deps.onFailure?.({ actor: claims?.subject ?? '', reason: 'invalid_refresh_token', request });
          throw oauthError('invalid_grant', 'refresh token is invalid, expired or revoked');
        }
        who = { subject, sub: claims.subject, binding: claims.binding };
        refreshToken = given;
      } else {
        throw oauthError('unsupported_grant_type', 'grant_type must be password or refresh_token');
      }
      const { access, granted } = await issue(who, many(form.getAll('scope')), request);
      const body: Record<string, unknown> = {
        access_token: access.token,
        token: access.token,
        scope: granted.map(formatScope).join(' '),
        expires_in: access.expiresIn,
        issued_at: access.issuedAt,
      };
      if (refreshToken) body.refresh_token = refreshToken;
      return noStore(reply).send(body);
    });
  };
}
