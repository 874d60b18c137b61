import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

export type PasswordJob = { id: number; op: 'compare'; password: string; hash: string } | { id: number; op: 'hash'; password: string; cost: number };
export type PasswordResult = { id: number; value: boolean | string } | { id: number; error: string };

/** Every worker is busy and the queue is full: answer 429 and let the client come back. */
export class PasswordQueueFullError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super('password checks are at capacity');
    this.name = 'PasswordQueueFullError';
  }
}

export interface PasswordPoolOptions {
  /** Worker threads; default min(2, CPUs). */
  workers?: number | undefined;
  /** Jobs allowed to wait for a worker; beyond it submissions fail with PasswordQueueFullError. */
  maxQueued: number;
}

export interface PasswordPoolStats {
  workers: number;
  running: number;
  queued: number;
  /** bcrypt comparisons finished, all in worker threads. */
  compares: number;
  hashes: number;
  /** Submissions refused because the queue was full. */
  rejected: number;
}

interface Pending {
  job: PasswordJob;
  resolve(value: boolean | string): void;
  reject(err: Error): void;
}

export function defaultPasswordWorkers(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

const WORKER_URL = new URL('./password-worker.js', import.meta.url);

/**
 * A small pool of worker threads for bcrypt, so a flood of logins costs the event loop (and every
 * pull it serves) nothing but message passing. Workers start on first use and are unref'd, so an
 * idle pool keeps no process alive.
 */
export class PasswordPool {
  private readonly size: number;
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, Pending>();
  private readonly queue: Pending[] = [];
  private readonly startedAt = new Map<Worker, number>();
  private nextId = 1;
  private spawned = 0;
  private closed = false;
  /** Moving average of one job's duration, for Retry-After. */
  private avgMs = 100;
  private readonly counts = { compares: 0, hashes: 0, rejected: 0 };

  constructor(private readonly options: PasswordPoolOptions) {
    this.size = options.workers ?? defaultPasswordWorkers();
  }

  compare(password: string, hash: string): Promise<boolean> {
    return this.submit({ id: this.nextId++, op: 'compare', password, hash }) as Promise<boolean>;
  }

  hash(password: string, cost: number): Promise<string> {
    return this.submit({ id: this.nextId++, op: 'hash', password, cost }) as Promise<string>;
  }

  stats(): PasswordPoolStats {
    return { workers: this.spawned, running: this.busy.size, queued: this.queue.length, ...this.counts };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('password pool closed'));
    const all = [...this.idle.splice(0), ...this.busy.keys()];
    for (const [, p] of this.busy) p.reject(new Error('password pool closed'));
    this.busy.clear();
    await Promise.all(all.map((w) => w.terminate()));
  }

  private submit(job: PasswordJob): Promise<boolean | string> {
    if (this.closed) return Promise.reject(new Error('password pool closed'));
    return new Promise((resolve, reject) => {
      const pending: Pending = { job, resolve, reject };
      const worker = this.idle.pop() ?? (this.spawned < this.size ? this.spawn() : undefined);
      if (worker) return this.run(worker, pending);
      if (this.queue.length >= this.options.maxQueued) {
        this.counts.rejected++;
        const backlogMs = ((this.queue.length + this.busy.size) * this.avgMs) / this.size;
        return reject(new PasswordQueueFullError(Math.max(1, Math.ceil(backlogMs / 1000))));
      }
      this.queue.push(pending);
    });
  }

  private spawn(): Worker {
    const worker = new Worker(WORKER_URL);
    worker.unref();
    this.spawned++;
    worker.on('message', (result: PasswordResult) => {
      const pending = this.busy.get(worker);
      if (!pending || pending.job.id !== result.id) return;
      this.busy.delete(worker);
      this.avgMs = this.avgMs * 0.8 + (performance.now() - (this.startedAt.get(worker) ?? 0)) * 0.2;
      if ('error' in result) pending.reject(new Error(`password worker: ${result.error}`));
      else {
        if (pending.job.op === 'compare') this.counts.compares++;
        else this.counts.hashes++;
        pending.resolve(result.value);
      }
      const next = this.queue.shift();
      if (next) this.run(worker, next);
      else if (!this.closed) this.idle.push(worker);
    });
    let dead = false;
    const gone = (err: Error) => {
      // A worker that dies takes only its own job with it; a new one takes over the queue.
      if (dead) return;
      dead = true;
      this.spawned--;
      this.startedAt.delete(worker);
      const i = this.idle.indexOf(worker);
      if (i >= 0) this.idle.splice(i, 1);
      const pending = this.busy.get(worker);
      this.busy.delete(worker);
      pending?.reject(err);
      const next = this.closed ? undefined : this.queue.shift();
      if (next) this.run(this.spawn(), next);
    };
    worker.on('error', gone);
    worker.on('exit', (code) => {
      if (!this.closed) gone(new Error(`password worker exited with code ${code}`));
    });
    return worker;
  }

  private run(worker: Worker, pending: Pending): void {
    this.busy.set(worker, pending);
    this.startedAt.set(worker, performance.now());
    worker.postMessage(pending.job);
  }
}
