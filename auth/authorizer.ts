import type { FastifyRequest } from 'fastify';
import { OciError } from '../errors/oci-error.js';
import { accessDetail, bearerChallenge } from './challenge.js';
import { principalOf, resolveSubject } from './identities.js';
import type { RobotStore } from './robots.js';
import type { Policy, Subject } from './rules.js';
import { covers, mergeNeeds, missing } from './scope.js';
import type { AccessTokenVerifier, VerifiedToken } from './token.js';
import type { AccessNeed, AuthFailureReason, Authorizer, Principal } from './types.js';
import type { UserStore } from './users.js';

type TokenState = { kind: 'none' } | { kind: 'invalid'; reason: string; message?: string } | { kind: 'valid'; token: VerifiedToken; principal: Principal };

export interface TokenAuthorizerDeps {
  verifier: AccessTokenVerifier;
  policy: Policy;
  users: UserStore;
  robots: RobotStore;
  service: string;
  realm: (request: FastifyRequest) => string;
  onFailure?: (failure: { actor: string; reason: AuthFailureReason; request: { ip: string; id: string } }) => void;
}

/**
 * Checks the bearer token of each /v2/ request. Missing token: 401 with a challenge naming the
 * scopes needed. Bad token: 401 `invalid_token`. Valid token lacking a scope: 401
 * `insufficient_scope` when a fresh token could carry it (the client asks the realm again), 403
 * DENIED when the rules would never grant it to this (known, logged-in) subject.
 */
export class TokenAuthorizer implements Authorizer {
  private readonly states = new WeakMap<FastifyRequest, Promise<TokenState>>();
  private readonly subjects = new WeakMap<FastifyRequest, Promise<Subject | undefined>>();

  constructor(private readonly deps: TokenAuthorizerDeps) {}

  async authorize(request: FastifyRequest, needs: AccessNeed[]): Promise<Principal> {
    const wanted = mergeNeeds(needs);
    const state = await this.state(request);
    if (state.kind === 'none') throw this.unauthorized(request, wanted);
    if (state.kind === 'invalid') {
      request.log.debug({ reason: state.reason }, 'bearer token refused');
      this.deps.onFailure?.({ actor: '', reason: 'invalid_token', request });
      throw this.unauthorized(request, wanted, 'invalid_token', state.message ?? 'invalid or expired token');
    }
    const lacking = missing(state.token.access, wanted);
    if (lacking.length === 0) return state.principal;
    if (state.token.local && state.principal.kind !== 'anonymous') {
      const subject = await this.subject(request, state.principal.subject);
      if (subject) {
        let grantable = true;
        for (const need of lacking) if (!(await this.deps.policy.allows(subject, need))) grantable = false;
        if (!grantable) {
          this.deps.onFailure?.({ actor: state.principal.subject, reason: 'denied', request });
          throw new OciError('DENIED', undefined, accessDetail(lacking));
        }
      }
    }
    throw this.unauthorized(request, wanted, 'insufficient_scope', 'insufficient scope', lacking);
  }

  async allows(request: FastifyRequest, need: AccessNeed): Promise<boolean> {
    const state = await this.state(request);
    if (state.kind === 'invalid') return false;
    if (state.kind === 'valid') {
      if (covers(state.token.access, [need])) return true;
      // Tokens from another issuer say all they grant; for Berth's own the live rules can say more.
      if (!state.token.local) return false;
    }
    const subject = state.kind === 'none' ? ({ kind: 'anonymous' } as const) : await this.subject(request, state.principal.subject);
    return subject !== undefined && this.deps.policy.allows(subject, need);
  }

  async allowsEach(request: FastifyRequest, needs: AccessNeed[]): Promise<boolean[]> {
    const state = await this.state(request);
    if (state.kind === 'invalid') return needs.map(() => false);
    const covered = needs.map((need) => state.kind === 'valid' && covers(state.token.access, [need]));
    if (state.kind === 'valid' && !state.token.local) return covered;
    const subject = state.kind === 'none' ? ({ kind: 'anonymous' } as const) : await this.subject(request, state.principal.subject);
    if (subject === undefined) return covered;
    const open = needs.filter((_, i) => !covered[i]);
    const live = open.length === 0 ? [] : await this.deps.policy.allowsEach(subject, open);
    let next = 0;
    return covered.map((c) => c || (live[next++] ?? false));
  }

  /** Resolved once per request: catalog filtering may ask about many repositories. */
  private subject(request: FastifyRequest, sub: string): Promise<Subject | undefined> {
    let s = this.subjects.get(request);
    if (!s) {
      s = resolveSubject(this.deps.users, this.deps.robots, sub);
      this.subjects.set(request, s);
    }
    return s;
  }

  private state(request: FastifyRequest): Promise<TokenState> {
    let s = this.states.get(request);
    if (!s) {
      s = this.readToken(request);
      this.states.set(request, s);
    }
    return s;
  }

  private async readToken(request: FastifyRequest): Promise<TokenState> {
    const header = request.headers.authorization;
    if (header === undefined || header === '') return { kind: 'none' };
    const match = /^Bearer[ ]+([A-Za-z0-9_.~+/=-]+)\s*$/i.exec(header);
    // Basic credentials on /v2/ are not a token: answer with the challenge, as distribution does.
    if (!match) return /^Basic /i.test(header) ? { kind: 'none' } : { kind: 'invalid', reason: 'not a bearer token' };
    const result = await this.deps.verifier.verify(match[1] as string);
    if (!result.ok)
      return result.message === undefined ? { kind: 'invalid', reason: result.reason } : { kind: 'invalid', reason: result.reason, message: result.message };
    const { tagImmutability } = result.token;
    if (tagImmutability === undefined) return { kind: 'valid', token: result.token, principal: principalOf(result.token.subject) };
    for (const [repository, { unusable }] of tagImmutability) {
      for (const { pattern, reason } of unusable) {
        request.log.warn(
          { repository, pattern, reason },
          'token carries a tag_immutable_patterns entry Berth cannot use: every tag of the repository is immutable for this token',
        );
      }
    }
    return { kind: 'valid', token: result.token, principal: { ...principalOf(result.token.subject), tagImmutability } };
  }

  private unauthorized(
    request: FastifyRequest,
    needs: AccessNeed[],
    error?: 'invalid_token' | 'insufficient_scope',
    message?: string,
    detailNeeds: AccessNeed[] = needs,
  ): OciError {
    return new OciError('UNAUTHORIZED', message, accessDetail(detailNeeds), {
      'WWW-Authenticate': bearerChallenge(this.deps.realm(request), this.deps.service, needs, error),
    });
  }
}
