import type { Challenge } from './challenge.js';

/*
 * Bearer tokens from an upstream's token service, one per (realm, service, scope), kept until shortly
 * before they expire. Requests needing a token nobody holds yet share one fetch, so a burst of misses
 * on one repository costs the token service one request.
 */

export type BearerChallenge = Extract<Challenge, { scheme: 'bearer' }>;

/** The token spec's default when a token service gives no expires_in. */
export const DEFAULT_TOKEN_SECONDS = 60;

/**
 * How long a token is reused: its lifetime less a margin (a fifth, at most 30 s), so a token never
 * expires between being taken from the cache and reaching the upstream, even with some clock skew.
 */
export function tokenReuseMs(expiresInSeconds: number | undefined): number {
  const lifetime = (expiresInSeconds ?? DEFAULT_TOKEN_SECONDS) * 1000;
  return lifetime - Math.min(30_000, lifetime / 5);
}

export interface TokenCacheOptions {
  now: () => number;
  fetch: (challenge: BearerChallenge, scope: string) => Promise<{ token: string; expiresInSeconds: number | undefined }>;
}

interface Held {
  token: string;
  until: number;
}

export class TokenCache {
  private readonly held = new Map<string, Held>();
  private readonly pending = new Map<string, Promise<string>>();

  constructor(private readonly options: TokenCacheOptions) {}

  get(challenge: BearerChallenge, scope: string): Promise<string> {
    const key = keyOf(challenge, scope);
    const held = this.held.get(key);
    if (held !== undefined && held.until > this.options.now()) return Promise.resolve(held.token);
    const pending = this.pending.get(key);
    if (pending !== undefined) return pending;
    const fetching = this.options
      .fetch(challenge, scope)
      .then(({ token, expiresInSeconds }) => {
        this.held.set(key, { token, until: this.options.now() + tokenReuseMs(expiresInSeconds) });
        this.sweep();
        return token;
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, fetching);
    return fetching;
  }

  /** Drops `token` if it is the one held (the upstream refused it); a newer one stays. */
  forget(challenge: BearerChallenge, scope: string, token: string): void {
    const key = keyOf(challenge, scope);
    if (this.held.get(key)?.token === token) this.held.delete(key);
  }

  /** Expired tokens go once in a while, so a cache over many repositories stays bounded by what is live. */
  private sweep(): void {
    if (this.held.size < 1024) return;
    const now = this.options.now();
    for (const [key, held] of this.held) if (held.until <= now) this.held.delete(key);
  }
}

function keyOf(challenge: BearerChallenge, scope: string): string {
  return `${challenge.realm}\n${challenge.service ?? ''}\n${scope}`;
}
