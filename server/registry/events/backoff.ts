/*
 * How long a failing endpoint waits before the next attempt. Exponential, so a dead endpoint costs
 * little; jittered, so many registries (or processes) do not retry in step; capped, so an endpoint that
 * comes back is noticed within maxMs. A Retry-After the endpoint sent wins, within the same cap: an
 * endpoint may ask for a pause, not for an event to wait forever.
 */

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/** The jitter: each delay is scaled by a factor in [1 - JITTER, 1 + JITTER). */
export const JITTER = 0.2;

/**
 * The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.
 * `random` returns [0, 1) like Math.random; tests pass their own.
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, options: { retryAfterMs?: number | undefined; random?: () => number } = {}): number {
  if (options.retryAfterMs !== undefined && options.retryAfterMs >= 0) return Math.min(policy.maxMs, Math.round(options.retryAfterMs));
  const n = Math.max(1, Math.floor(attempt));
  // The exponent is bounded so a huge attempt number stays a finite product.
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(n - 1, 60));
  const random = options.random ?? Math.random;
  const factor = 1 - JITTER + 2 * JITTER * random();
  // Capped after the jitter as well: maxSeconds is a promise to the operator, jitter only spreads below it.
  return Math.max(0, Math.min(policy.maxMs, Math.round(base * factor)));
}
