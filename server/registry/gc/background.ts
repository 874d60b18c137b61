// Garbage collection passes inside a server process: every interval (background GC) and on request
// (POST /api/v1/gc). One pass at a time per process; passes in several processes may overlap, since
// each decision is a compare-and-set, so they only share the work. The runner keeps what the status
// endpoint shows: the pass running now with its progress, and the last one.
import type { FastifyInstance } from 'fastify';
import { GcRefusedError, type Collector, type GcAction, type GcSummary } from './collector.js';

export type GcEvent =
  { kind: 'pass'; result: 'ok'; summary: GcSummary } | { kind: 'pass'; result: 'refused' | 'failed'; durationMs: number } | ({ kind: 'action' } & GcAction);

export interface GcRunnerOptions {
  limit: number;
  now: () => number;
  onEvent?: (event: GcEvent) => void;
}

export interface GcPassStatus {
  /** Who started it: the interval timer or a request. */
  trigger: 'interval' | 'request';
  dryRun: boolean;
  startedAt: string;
  /** Counts so far (running) or final (finished). */
  summary?: GcSummary;
  result?: 'ok' | 'refused' | 'failed';
  finishedAt?: string;
  /** Why it was refused or failed. */
  message?: string;
}

export class GcRunner {
  private readonly stop = new AbortController();
  private running: Promise<void> | undefined;
  private current: GcPassStatus | undefined;
  private last: GcPassStatus | undefined;
  private refusedLogged = false;

  constructor(
    private readonly app: FastifyInstance,
    private readonly collector: Collector,
    private readonly options: GcRunnerOptions,
  ) {}

  /** Starts a pass unless one runs in this process already; true when it started. */
  trigger(trigger: GcPassStatus['trigger'], dryRun = false): boolean {
    if (this.running || this.stop.signal.aborted) return false;
    const status: GcPassStatus = { trigger, dryRun, startedAt: new Date(this.options.now()).toISOString() };
    this.current = status;
    const started = performance.now();
    this.running = this.collector
      .pass({
        limit: this.options.limit,
        dryRun,
        signal: this.stop.signal,
        onProgress: (summary) => {
          status.summary = summary;
        },
        // A dry run deletes nothing, so it says nothing to the audit log or the counters.
        ...(dryRun ? {} : { onAction: (action: GcAction) => this.emit({ kind: 'action', ...action }) }),
      })
      .then((summary) => {
        this.refusedLogged = false;
        Object.assign(status, { summary, result: 'ok' });
        if (!dryRun) this.emit({ kind: 'pass', result: 'ok', summary });
        if (summary.examined > 0) this.app.log.info({ gc: summary }, dryRun ? 'gc dry run finished' : 'gc pass finished');
      })
      .catch((err: unknown) => {
        const durationMs = Math.round(performance.now() - started);
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof GcRefusedError) {
          Object.assign(status, { result: 'refused', message });
          this.emit({ kind: 'pass', result: 'refused', durationMs });
          // Said once, not every interval.
          if (!this.refusedLogged) this.app.log.warn(err.message);
          this.refusedLogged = true;
        } else if (!this.stop.signal.aborted) {
          Object.assign(status, { result: 'failed', message });
          this.emit({ kind: 'pass', result: 'failed', durationMs });
          this.app.log.warn({ err }, 'gc pass failed');
        }
      })
      .finally(() => {
        status.finishedAt = new Date(this.options.now()).toISOString();
        this.last = status;
        this.current = undefined;
        this.running = undefined;
      });
    return true;
  }

  status(): { running?: GcPassStatus; last?: GcPassStatus } {
    return { ...(this.current ? { running: { ...this.current } } : {}), ...(this.last ? { last: { ...this.last } } : {}) };
  }

  /** Resolves once the pass running now (if any) has ended. */
  async settled(): Promise<void> {
    await this.running;
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.running;
  }

  private emit(event: GcEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch (err) {
      this.app.log.warn({ err }, 'gc event sink failed');
    }
  }
}

/** Background GC: a pass every `intervalMs`, starting one interval after start-up. */
export function startBackgroundGc(app: FastifyInstance, runner: GcRunner, intervalMs: number): void {
  const timer = setInterval(() => runner.trigger('interval'), intervalMs);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
}
