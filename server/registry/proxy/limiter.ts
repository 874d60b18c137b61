/*
 * Berth's own cap on one upstream: at most `maxConcurrent` requests in flight and, when
 * `requestsPerSecond` > 0, a token bucket (a burst of one second's worth). Requests over the caps wait
 * in one FIFO line: the cap shapes traffic to the upstream, it never refuses a client unless the client
 * has waited `maxWaitMs`. Per process, like every cap here.
 */

/** A request waited for the caps longer than maxWaitMs. */
export class LimiterWaitExceededError extends Error {
  constructor(readonly waitedMs: number) {
    super(`waited ${waitedMs} ms for a free slot`);
    this.name = 'LimiterWaitExceededError';
  }
}

export interface LimiterOptions {
  maxConcurrent: number;
  /** 0: no rate cap. */
  requestsPerSecond: number;
  maxWaitMs: number;
  now?: (() => number) | undefined;
}

/** Gives back the slot; calling it again does nothing. */
export type Release = () => void;

interface Waiter {
  grant: (release: Release) => void;
  fail: (err: unknown) => void;
  queuedAt: number;
  timer: NodeJS.Timeout;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

export class UpstreamLimiter {
  private active = 0;
  private readonly line: Waiter[] = [];
  private tokens: number;
  private refilledAt: number;
  private refillTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly options: LimiterOptions) {
    this.now = options.now ?? Date.now;
    this.tokens = this.burst();
    this.refilledAt = this.now();
  }

  /** Requests holding a slot. */
  get inFlight(): number {
    return this.active;
  }

  /** Requests waiting in line. */
  get waiting(): number {
    return this.line.length;
  }

  /**
   * Waits for a slot (first come, first served) and resolves with its release, and how long it waited.
   * Rejects with LimiterWaitExceededError after maxWaitMs, or the signal's reason when aborted.
   */
  acquire(signal?: AbortSignal): Promise<{ release: Release; waitedMs: number }> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.line.length === 0 && this.active < this.options.maxConcurrent && this.takeToken()) {
      return Promise.resolve({ release: this.slot(), waitedMs: 0 });
    }
    return new Promise((resolve, reject) => {
      const queuedAt = this.now();
      const waiter: Waiter = {
        grant: (release) => resolve({ release, waitedMs: this.now() - queuedAt }),
        fail: reject,
        queuedAt,
        signal,
        timer: setTimeout(() => this.drop(waiter, new LimiterWaitExceededError(this.now() - queuedAt)), this.options.maxWaitMs),
        onAbort: () => this.drop(waiter, signal?.reason),
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.line.push(waiter);
      this.pump();
    });
  }

  /** Stops the refill timer; waiters left in line are failed with `reason`. */
  close(reason: unknown = new Error('upstream closed')): void {
    clearTimeout(this.refillTimer);
    for (const waiter of this.line.splice(0)) this.settle(waiter, () => waiter.fail(reason));
  }

  private burst(): number {
    return Math.max(1, this.options.requestsPerSecond);
  }

  private takeToken(): boolean {
    const rate = this.options.requestsPerSecond;
    if (rate <= 0) return true;
    const now = this.now();
    this.tokens = Math.min(this.burst(), this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private slot(): Release {
    this.active += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active -= 1;
      this.pump();
    };
  }

  private pump(): void {
    while (this.line.length > 0 && this.active < this.options.maxConcurrent) {
      if (!this.takeToken()) {
        this.scheduleRefill();
        return;
      }
      const waiter = this.line.shift() as Waiter;
      this.settle(waiter, () => waiter.grant(this.slot()));
    }
  }

  private scheduleRefill(): void {
    if (this.refillTimer !== undefined) return;
    const ms = Math.max(1, Math.ceil(((1 - this.tokens) / this.options.requestsPerSecond) * 1000));
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.pump();
    }, ms);
  }

  private drop(waiter: Waiter, err: unknown): void {
    const at = this.line.indexOf(waiter);
    if (at < 0) return;
    this.line.splice(at, 1);
    this.settle(waiter, () => waiter.fail(err));
    // The head of the line may have been waiting behind this one only for a token.
    this.pump();
  }

  private settle(waiter: Waiter, how: () => void): void {
    clearTimeout(waiter.timer);
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
    how();
  }
}
