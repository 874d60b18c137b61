import type { FastifyRequest } from 'fastify';
import type { TokenImmutability } from './tag-patterns.js';

/** One resource and the actions a request needs on it, as in a token's `access` claim. */
export interface AccessNeed {
  type: 'repository' | 'registry';
  /** Repository name, or `catalog` for type `registry`. */
  name: string;
  /** e.g. ['pull'], ['pull', 'push'], ['delete'], ['*']. */
  actions: string[];
}

/** Who made the request, once authenticated. */
export interface Principal {
  /** Token `sub`; empty for anonymous. */
  subject: string;
  kind: 'user' | 'robot' | 'anonymous';
  /** Immutable-tag patterns the token carries, by repository (an external token service's `tag_immutable_patterns`). */
  tagImmutability?: ReadonlyMap<string, TokenImmutability>;
}

/**
 * The registry side of auth, used by every /v2/ route. `authorize` throws an OciError
 * (UNAUTHORIZED with a Bearer challenge, or DENIED) unless the request may do all of `needs`.
 * `allows` answers without throwing (used to filter automatic mounts and catalog results).
 */
export interface Authorizer {
  authorize(request: FastifyRequest, needs: AccessNeed[]): Promise<Principal>;
  allows(request: FastifyRequest, need: AccessNeed): Promise<boolean>;
  /** `allows` for each of `needs`, in order (for filtering long lists: the rules are read once). */
  allowsEach(request: FastifyRequest, needs: AccessNeed[]): Promise<boolean[]>;
}

/** Auth off: everyone may do everything, as an anonymous principal. */
export const openAccess: Authorizer = {
  authorize: async () => ({ subject: '', kind: 'anonymous' }),
  allows: async () => true,
  allowsEach: async (_request, needs) => needs.map(() => true),
};

/** Why auth refused a request, as reported to the audit/metrics sink. */
export type AuthFailureReason = 'bad_credentials' | 'rate_limited' | 'invalid_refresh_token' | 'invalid_token' | 'denied';
