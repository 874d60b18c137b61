// Garbage collection passes inside a server process: every interval (background GC) and on request
// (POST /api/v1/gc). One pass at a time per process; passes in several processes may overlap, since
// each decision is a compare-and-set, so they only share the work. The runner keeps what the status
// endpoint shows: the pass running now with its progress, and the last one.
import type { FastifyInstance } from 'fastify';
import { BackgroundRunner, type RunnerStatus, type RunStatus } from '../background-runner.js';
import { GcRefusedError, type Collector, type GcAction, type GcSummary } from './collector.js';

export type GcEvent =
  { kind: 'pass'; result: 'ok'; summary: GcSummary } | { kind: 'pass'; result: 'refused' | 'failed'; durationMs: number } | ({ kind: 'action' } & GcAction);

export interface GcRunnerOptions {
  limit: number;
  now: () => number;
  onEvent?: (event: GcEvent) => void;
}

export type GcPassStatus = RunStatus<GcSummary, 'ok' | 'refused' | 'failed'>;

export class GcRunner {
  private readonly runner: BackgroundRunner<GcSummary, 'ok' | 'refused' | 'failed', GcEvent>;
  private refusedLogged = false;

  constructor(
    private readonly app: FastifyInstance,
    private readonly collector: Collector,
    private readonly options: GcRunnerOptions,
  ) {
    this.runner = new BackgroundRunner({ log: app.log, now: options.now, name: 'gc', ...(options.onEvent ? { onEvent: options.onEvent } : {}) });
  }

  /** Starts a run every `intervalMs` (skipped while one goes); status() says when the next is due. */
  every(intervalMs: number): void {
    this.runner.every(this.app, intervalMs, () => this.trigger('interval'));
  }

  /** Starts a pass unless one runs in this process already; true when it started. */
  trigger(trigger: GcPassStatus['trigger'], dryRun = false): boolean {
    return this.runner.start(trigger, dryRun, (status) => this.pass(status, dryRun));
  }

  status(): RunnerStatus<GcSummary, 'ok' | 'refused' | 'failed'> {
    return this.runner.status();
  }

  /** Resolves once the pass running now (if any) has ended. */
  async settled(): Promise<void> {
    await this.runner.settled();
  }

  async close(): Promise<void> {
    await this.runner.close();
  }

  private async pass(status: GcPassStatus, dryRun: boolean): Promise<void> {
    const started = performance.now();
    const signal = this.runner.signal;
    await this.collector
      .pass({
        limit: this.options.limit,
        dryRun,
        signal,
        onProgress: (summary) => {
          status.summary = summary;
        },
        // A dry run deletes nothing, so it says nothing to the audit log or the counters.
        ...(dryRun ? {} : { onAction: (action: GcAction) => this.runner.emit({ kind: 'action', ...action }) }),
      })
      .then((summary) => {
        this.refusedLogged = false;
        Object.assign(status, { summary, result: 'ok' });
        if (!dryRun) this.runner.emit({ kind: 'pass', result: 'ok', summary });
        if (summary.examined > 0) this.app.log.info({ gc: summary }, dryRun ? 'gc dry run finished' : 'gc pass finished');
      })
      .catch((err: unknown) => {
        const durationMs = Math.round(performance.now() - started);
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof GcRefusedError) {
          Object.assign(status, { result: 'refused', message });
          this.runner.emit({ kind: 'pass', result: 'refused', durationMs });
          // Said once, not every interval.
          if (!this.refusedLogged) this.app.log.warn(err.message);
          this.refusedLogged = true;
        } else if (!signal.aborted) {
          Object.assign(status, { result: 'failed', message });
          this.runner.emit({ kind: 'pass', result: 'failed', durationMs });
          this.app.log.warn({ err }, 'gc pass failed');
        }
      });
  }
}

/** Background GC: a pass every `intervalMs`, starting one interval after start-up. */
export function startBackgroundGc(runner: GcRunner, intervalMs: number): void {
  runner.every(intervalMs);
}
