// Retention runs inside a server process: every interval (when retention.enabled) and on request
// (POST /api/v1/retention/run). One run at a time per process; runs in several processes share the
// walk through the cursor and never handle one repository at once (the lease per repository).
import type { FastifyInstance } from 'fastify';
import { BackgroundRunner, type RunnerStatus, type RunStatus } from '../background-runner.js';
import type { RetentionPolicy } from './policy.js';
import type { Retention, RetentionEvent, RunSummary } from './retention.js';

export type RetentionRunEvent = RetentionEvent | { kind: 'run'; result: 'ok' | 'failed'; summary?: RunSummary; durationMs: number };

export interface RetentionRunnerOptions {
  policies: readonly RetentionPolicy[];
  batch: number;
  now: () => number;
  onEvent?: (event: RetentionRunEvent) => void;
}

export type RetentionRunStatus = RunStatus<RunSummary, 'ok' | 'failed'>;

export class RetentionRunner {
  private readonly runner: BackgroundRunner<RunSummary, 'ok' | 'failed', RetentionRunEvent>;

  constructor(
    private readonly app: FastifyInstance,
    readonly retention: Retention,
    readonly options: RetentionRunnerOptions,
  ) {
    this.runner = new BackgroundRunner({ log: app.log, now: options.now, name: 'retention', ...(options.onEvent ? { onEvent: options.onEvent } : {}) });
  }

  /** Starts a run every `intervalMs` (skipped while one goes); status() says when the next is due. */
  every(intervalMs: number): void {
    this.runner.every(this.app, intervalMs, () => this.trigger('interval'));
  }

  /** Starts a run unless one runs in this process already; true when it started. */
  trigger(trigger: RetentionRunStatus['trigger'], dryRun = false): boolean {
    return this.runner.start(trigger, dryRun, (status) => this.run(status, dryRun));
  }

  status(): RunnerStatus<RunSummary, 'ok' | 'failed'> {
    return this.runner.status();
  }

  async settled(): Promise<void> {
    await this.runner.settled();
  }

  async close(): Promise<void> {
    await this.runner.close();
  }

  private async run(status: RetentionRunStatus, dryRun: boolean): Promise<void> {
    const started = performance.now();
    await this.retention
      .run({
        policies: this.options.policies,
        batch: this.options.batch,
        dryRun,
        force: false,
        signal: this.runner.signal,
        onProgress: (summary) => {
          status.summary = summary;
        },
        onEvent: (event) => {
          if (event.kind === 'refused') this.app.log.warn({ repository: event.repository, policy: event.policy }, event.message);
          if (event.kind === 'repository' && event.result === 'failed') {
            this.app.log.warn({ repository: event.repository, policy: event.policy }, `retention failed: ${event.message ?? ''}`);
          }
          // A dry run deletes nothing: no audit lines, no counters (its refusals are only what a run would do).
          if (!dryRun) this.runner.emit(event);
        },
      })
      .then((summary) => {
        Object.assign(status, { summary, result: 'ok' });
        if (!dryRun) this.runner.emit({ kind: 'run', result: 'ok', summary, durationMs: summary.durationMs });
        if (summary.repositories > 0) this.app.log.info({ retention: summary }, dryRun ? 'retention dry run finished' : 'retention run finished');
      })
      .catch((err: unknown) => {
        Object.assign(status, { result: 'failed', message: err instanceof Error ? err.message : String(err) });
        if (!dryRun) this.runner.emit({ kind: 'run', result: 'failed', durationMs: Math.round(performance.now() - started) });
        this.app.log.warn({ err }, 'retention run failed');
      });
  }
}

/** A run every `intervalMs`, the first one interval after start-up. */
export function startBackgroundRetention(runner: RetentionRunner, intervalMs: number): void {
  runner.every(intervalMs);
}
