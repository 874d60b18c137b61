export interface LoginLimits {
  perUser: number;
  perAddress: number;
  windowSeconds: number;
}

const MAX_TRACKED = 100_000;

/**
 * Counts failed logins per user name and per client address within a sliding window. Once either
 * count reaches its limit, further attempts are refused until the oldest failure leaves the window.
 */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: LoginLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds to wait before trying again, or 0 when an attempt is allowed now. */
  retryAfter(user: string, address: string): number {
    return Math.max(this.wait(`u:${user}`, this.limits.perUser), this.wait(`a:${address}`, this.limits.perAddress));
  }

  fail(user: string, address: string): void {
    this.record(`u:${user}`);
    this.record(`a:${address}`);
  }

  /** A good password clears the user's count; the address keeps its count, so one valid account cannot reset it. */
  succeed(user: string): void {
    this.failures.delete(`u:${user}`);
  }

  private recent(key: string): number[] {
    const cutoff = this.now() - this.limits.windowSeconds * 1000;
    const list = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) this.failures.delete(key);
    else this.failures.set(key, list);
    return list;
  }

  private wait(key: string, limit: number): number {
    const list = this.recent(key);
    if (list.length < limit) return 0;
    const oldest = list[list.length - limit] as number;
    return Math.max(1, Math.ceil((oldest + this.limits.windowSeconds * 1000 - this.now()) / 1000));
  }

  private record(key: string): void {
    const list = this.recent(key);
    list.push(this.now());
    this.failures.delete(key);
    this.failures.set(key, list);
    if (this.failures.size > MAX_TRACKED) {
      // Map order is insertion order, and record() re-inserts, so the first key is the stalest.
      const first = this.failures.keys().next().value;
      if (first !== undefined) this.failures.delete(first);
    }
  }
}
