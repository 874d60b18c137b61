import { randomUUID } from 'node:crypto';
import { dayOf, type PullBatch, type PullBatchEntry, type PullMetadata, type PullTally } from '../../../storage-drivers/metadata/pull-types.js';

/*
 * Pull counting off the request path (docs/pull-statistics.md). A manifest GET adds one to a tally in
 * memory, keyed by repository, UTC day and reference; nothing waits for the metadata store. Every
 * flushSeconds (or sooner once flushEntries tallies wait) the tallies go to the store as one batch.
 * A batch the store refused stays queued under its id and is tried again at the next flushes (the
 * store applies an id once, so a retry after a lost answer does not count twice), up to maxAttempts,
 * then dropped and counted. Memory is bounded: at most maxEntries tallies, waiting or queued; a pull
 * that would need a new tally beyond that is not counted, and counted as dropped.
 */

export type PullReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

/** What the manifest routes see: counting is synchronous and never throws. */
export interface PullRecorder {
  count(repo: string, reference: PullReference): void;
}

export const NO_PULL_COUNTING: PullRecorder = { count: () => undefined };

export type PullDropReason = 'overflow' | 'retries' | 'shutdown';

/** For metrics; `pending` is the tallies held in memory afterwards (waiting and queued for retry). */
export type PullCounterEvent =
  | { kind: 'counted'; by: PullReference['kind']; pending: number }
  | { kind: 'flush'; result: 'ok' | 'failed'; tallies: number; pending: number }
  | { kind: 'dropped'; reason: PullDropReason; pulls: number; pending: number };

export interface PullCounterOptions {
  store: PullMetadata;
  /** Daily counts kept (stats.pullDays). */
  keepDays: number;
  /** Background flush interval; 0: only explicit flushes (tests). */
  flushMs: number;
  flushEntries: number;
  maxEntries: number;
  maxAttempts: number;
  now: () => number;
  log: { warn(obj: object, msg: string): void };
  onEvent?: (event: PullCounterEvent) => void;
}

export interface FlushResult {
  /** Batches the store took in this flush. */
  recorded: number;
  /** Batches it refused (queued again, or dropped after the last attempt). */
  failed: number;
  /** Tallies still held: refused batches waiting for the next flush. */
  pending: number;
}

interface Aggregate {
  repo: string;
  day: number;
  byTag: Map<string, PullTally>;
  byDigest: Map<string, PullTally>;
}

interface QueuedBatch {
  batch: PullBatch;
  attempts: number;
  tallies: number;
  pulls: number;
}

function tallies(map: Map<string, PullTally>): [string, PullTally][] {
  return [...map.entries()];
}

export class PullCounter implements PullRecorder {
  private waiting = new Map<string, Aggregate>();
  private waitingTallies = 0;
  private readonly queue: QueuedBatch[] = [];
  private queuedTallies = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private flushing = 0;
  private readonly timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: PullCounterOptions) {
    if (options.flushMs > 0) {
      this.timer = setInterval(() => this.flushInBackground(), options.flushMs);
      this.timer.unref();
    }
  }

  /** Tallies held in memory: waiting for a flush, or in a refused batch waiting for its retry. */
  get pending(): number {
    return this.waitingTallies + this.queuedTallies;
  }

  count(repo: string, reference: PullReference): void {
    try {
      this.add(repo, reference);
    } catch (err) {
      // A bug here must not cost a pull; it is worth a line.
      this.options.log.warn({ err }, 'pull not counted');
    }
  }

  private add(repo: string, reference: PullReference): void {
    const now = this.options.now();
    const day = dayOf(now);
    const slot = `${day} ${repo}`;
    let aggregate = this.waiting.get(slot);
    const map = reference.kind === 'tag' ? aggregate?.byTag : aggregate?.byDigest;
    const name = reference.kind === 'tag' ? reference.tag : reference.digest;
    const tally = map?.get(name);
    if (tally) {
      tally.count++;
      tally.last = Math.max(tally.last, now);
    } else {
      if (this.closed || this.pending >= this.options.maxEntries) {
        this.emit({ kind: 'dropped', reason: this.closed ? 'shutdown' : 'overflow', pulls: 1, pending: this.pending });
        return;
      }
      if (!aggregate) {
        aggregate = { repo, day, byTag: new Map(), byDigest: new Map() };
        this.waiting.set(slot, aggregate);
      }
      (reference.kind === 'tag' ? aggregate.byTag : aggregate.byDigest).set(name, { count: 1, last: now });
      this.waitingTallies++;
    }
    this.emit({ kind: 'counted', by: reference.kind, pending: this.pending });
    if (this.waitingTallies >= this.options.flushEntries) this.flushInBackground();
  }

  /**
   * Sends what was counted so far, and retries the batches refused before. Flushes run one at a time;
   * a flush asked for while one runs starts after it, so everything counted before the call is tried.
   */
  flush(): Promise<FlushResult> {
    const next = this.chain.then(() => this.flushOnce());
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Stops the timer and flushes once more; what the store still refuses then is dropped (and counted). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    await this.flush();
    for (const queued of this.queue.splice(0)) {
      this.queuedTallies -= queued.tallies;
      this.emit({ kind: 'dropped', reason: 'shutdown', pulls: queued.pulls, pending: this.pending });
    }
  }

  private flushInBackground(): void {
    if (this.flushing > 0) return;
    this.flush().catch((err: unknown) => this.options.log.warn({ err }, 'pull statistics flush failed'));
  }

  private takeWaiting(): void {
    if (this.waitingTallies === 0) return;
    const entries: PullBatchEntry[] = [];
    let pulls = 0;
    for (const aggregate of this.waiting.values()) {
      const byTag = tallies(aggregate.byTag).map(([tag, t]) => ({ tag, count: t.count, last: t.last }));
      const byDigest = tallies(aggregate.byDigest).map(([digest, t]) => ({ digest, count: t.count, last: t.last }));
      for (const t of [...byTag, ...byDigest]) pulls += t.count;
      entries.push({ repo: aggregate.repo, day: aggregate.day, byTag, byDigest });
    }
    const batch: PullBatch = { id: randomUUID(), entries, keepDays: this.options.keepDays, now: this.options.now() };
    this.queue.push({ batch, attempts: 0, tallies: this.waitingTallies, pulls });
    this.queuedTallies += this.waitingTallies;
    this.waiting = new Map();
    this.waitingTallies = 0;
  }

  private async flushOnce(): Promise<FlushResult> {
    this.flushing++;
    try {
      this.takeWaiting();
      const result: FlushResult = { recorded: 0, failed: 0, pending: 0 };
      for (const queued of [...this.queue]) {
        try {
          await this.options.store.recordPulls(queued.batch);
          this.unqueue(queued);
          result.recorded++;
          this.emit({ kind: 'flush', result: 'ok', tallies: queued.tallies, pending: this.pending });
        } catch (err) {
          queued.attempts++;
          result.failed++;
          const last = queued.attempts >= this.options.maxAttempts;
          this.options.log.warn(
            { err, batch: queued.batch.id, attempt: queued.attempts, pulls: queued.pulls },
            last ? 'pull statistics flush failed; giving the batch up' : 'pull statistics flush failed; retrying at the next flush',
          );
          if (last) this.unqueue(queued);
          this.emit({ kind: 'flush', result: 'failed', tallies: queued.tallies, pending: this.pending });
          if (last) this.emit({ kind: 'dropped', reason: 'retries', pulls: queued.pulls, pending: this.pending });
        }
      }
      result.pending = this.pending;
      return result;
    } finally {
      this.flushing--;
    }
  }

  private unqueue(queued: QueuedBatch): void {
    const i = this.queue.indexOf(queued);
    if (i >= 0) this.queue.splice(i, 1);
    this.queuedTallies -= queued.tallies;
  }

  private emit(event: PullCounterEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // A metrics sink's failure is not the pull's.
    }
  }
}
