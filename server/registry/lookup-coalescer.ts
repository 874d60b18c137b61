// Many nodes HEAD `app:latest` at once: a burst of lookups of one key costs at most two metadata
// round trips per process, and never answers from before the request arrived.

interface Pending<V> {
  promise: Promise<V>;
  resolve: (value: V) => void;
  reject: (err: unknown) => void;
}

interface KeyState<V> {
  running: Promise<V>;
  /** The lookup every request that arrived while `running` ran shares; it starts once `running` is done. */
  next: Pending<V> | undefined;
}

/**
 * Coalesces concurrent lookups of one key. A request never joins a lookup already in flight: that one
 * may have read the store before a write another process acknowledged to this request's client. It
 * joins the next lookup instead, which starts after it arrived, so every answer is at least as new as
 * the request (what a direct lookup gives) and a burst of N costs two round trips, not N. No answer is
 * kept once its lookup is done: a cache with a lifetime could not see a push in another process "at
 * once" without a round trip of its own, which is what it would save.
 */
export class LookupCoalescer<V> {
  private readonly keys = new Map<string, KeyState<V>>();

  constructor(private readonly onLookup?: (shared: boolean) => void) {}

  get(key: string, load: () => Promise<V>): Promise<V> {
    const state = this.keys.get(key);
    if (!state) {
      this.onLookup?.(false);
      return this.start(key, load);
    }
    this.onLookup?.(true);
    if (!state.next) state.next = deferred<V>();
    return state.next.promise;
  }

  /** Keys with a lookup in flight (tests). */
  get size(): number {
    return this.keys.size;
  }

  private start(key: string, load: () => Promise<V>): Promise<V> {
    const running = Promise.resolve().then(load);
    const state: KeyState<V> = { running, next: undefined };
    this.keys.set(key, state);
    const settled = () => {
      const next = state.next;
      if (!next) {
        this.keys.delete(key);
        return;
      }
      // The waiters' lookup, started now that they have all arrived; later arrivals wait for the one after.
      const following = this.start(key, load);
      following.then(next.resolve, next.reject);
    };
    running.then(settled, settled);
    return running;
  }
}

function deferred<V>(): Pending<V> {
  let resolve!: (value: V) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Its waiters handle a failure; this keeps an unwaited one from being reported as unhandled.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}
