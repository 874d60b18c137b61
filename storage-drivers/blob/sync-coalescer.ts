/**
 * Group commit for fsyncs of one target (a directory): callers that arrive together share one sync
 * instead of queueing one each behind the disk.
 *
 * A caller asks once its own change (a rename into the directory) has completed. A sync already
 * running may have started before that change, so it does not count for the caller: the caller joins
 * the next sync, which starts as soon as the running one ends and covers everyone who arrived in the
 * meantime. With no sync running, the caller's sync starts at once. So every caller resolves only
 * after a sync that began after it asked, and a failing sync rejects exactly the callers it covered.
 */
export class SyncCoalescer {
  private readonly lanes = new Map<string, Lane>();

  constructor(private readonly syncOnce: (target: string) => Promise<void>) {}

  /** Resolves once a sync of `target` that started after this call has completed. */
  sync(target: string): Promise<void> {
    let lane = this.lanes.get(target);
    if (lane === undefined) {
      lane = { running: false, waiting: undefined };
      this.lanes.set(target, lane);
    }
    lane.waiting ??= deferred();
    const { promise } = lane.waiting;
    if (!lane.running) this.start(target, lane);
    return promise;
  }

  /** Targets with a sync running or callers waiting (for tests: none once everything settled). */
  get active(): number {
    return this.lanes.size;
  }

  private start(target: string, lane: Lane): void {
    const batch = lane.waiting as Deferred;
    lane.waiting = undefined;
    lane.running = true;
    const done = () => {
      lane.running = false;
      if (lane.waiting !== undefined) this.start(target, lane);
      else this.lanes.delete(target);
    };
    let syncing: Promise<void>;
    try {
      syncing = this.syncOnce(target);
    } catch (err) {
      syncing = Promise.reject(err);
    }
    syncing.then(batch.resolve, batch.reject).finally(done);
  }
}

interface Lane {
  running: boolean;
  /** The callers the next sync will cover; it starts when the running one ends. */
  waiting: Deferred | undefined;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
