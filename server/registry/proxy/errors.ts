/*
 * What can go wrong talking to an upstream registry, typed so the routing step can tell "serve the
 * cached copy" (unavailable) from "the upstream says no" (not found, denied) and "the upstream sent
 * something wrong" (invalid). Messages name the upstream and what to check, never a credential.
 */

export type UnavailableReason = 'throttled' | 'server-error' | 'timeout' | 'unreachable' | 'token-endpoint' | 'queue-timeout';

/** Try again later: 429, 5xx, a timeout, no connection, the token endpoint down, or Berth's own cap waited on too long. */
export class UpstreamUnavailableError extends Error {
  constructor(
    readonly upstream: string,
    readonly reason: UnavailableReason,
    message: string,
    /** Seconds the upstream asked to wait (Retry-After), when it said. */
    readonly retryAfter?: number,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'UpstreamUnavailableError';
  }
}

/** The upstream has no such repository, manifest or blob (404). */
export class UpstreamNotFoundError extends Error {
  constructor(
    readonly upstream: string,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamNotFoundError';
  }
}

/** The upstream refused Berth's credentials (or anonymous access): 401/403 after authenticating. */
export class UpstreamDeniedError extends Error {
  constructor(
    readonly upstream: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'UpstreamDeniedError';
  }
}

/** The upstream answered with something Berth will not pass on: a wrong digest, too large, unreadable. */
export class UpstreamInvalidError extends Error {
  constructor(
    readonly upstream: string,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamInvalidError';
  }
}

export type UpstreamError = UpstreamUnavailableError | UpstreamNotFoundError | UpstreamDeniedError | UpstreamInvalidError;
