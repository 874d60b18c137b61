// Retention runs inside a server process: every interval (when retention.enabled) and on request
// (POST /api/v1/retention/run). One run at a time per process; runs in several processes share the
// walk through the cursor and never handle one repository at once (the lease per repository).
import type { FastifyInstance } from 'fastify';
import type { RetentionPolicy } from './policy.js';
import type { Retention, RetentionEvent, RunSummary } from './retention.js';

export type RetentionRunEvent = RetentionEvent | { kind: 'run'; result: 'ok' | 'failed'; summary?: RunSummary; durationMs: number };

export interface RetentionRunnerOptions {
  policies: readonly RetentionPolicy[];
  batch: number;
  now: () => number;
  onEvent?: (event: RetentionRunEvent) => void;
}

export interface RetentionRunStatus {
  trigger: 'interval' | 'request';
  dryRun: boolean;
  startedAt: string;
  summary?: RunSummary;
  result?: 'ok' | 'failed';
  finishedAt?: string;
  message?: string;
}

export class RetentionRunner {
  private readonly stop = new AbortController();
  private running: Promise<void> | undefined;
  private current: RetentionRunStatus | undefined;
  private last: RetentionRunStatus | undefined;

  constructor(
    private readonly app: FastifyInstance,
    readonly retention: Retention,
    readonly options: RetentionRunnerOptions,
  ) {}

  /** Starts a run unless one runs in this process already; true when it started. */
  trigger(trigger: RetentionRunStatus['trigger'], dryRun = false): boolean {
    if (this.running || this.stop.signal.aborted) return false;
    const status: RetentionRunStatus = { trigger, dryRun, startedAt: new Date(this.options.now()).toISOString() };
    this.current = status;
    const started = performance.now();
    this.running = this.retention
      .run({
        policies: this.options.policies,
        batch: this.options.batch,
        dryRun,
        force: false,
        signal: this.stop.signal,
        onProgress: (summary) => {
          status.summary = summary;
        },
        onEvent: (event) => {
          if (event.kind === 'refused') this.app.log.warn({ repository: event.repository, policy: event.policy }, event.message);
          if (event.kind === 'repository' && event.result === 'failed') {
            this.app.log.warn({ repository: event.repository, policy: event.policy }, `retention failed: ${event.message ?? ''}`);
          }
          // A dry run deletes nothing: no audit lines, no counters (its refusals are only what a run would do).
          if (!dryRun) this.emit(event);
        },
      })
      .then((summary) => {
        Object.assign(status, { summary, result: 'ok' });
        if (!dryRun) this.emit({ kind: 'run', result: 'ok', summary, durationMs: summary.durationMs });
        if (summary.repositories > 0) this.app.log.info({ retention: summary }, dryRun ? 'retention dry run finished' : 'retention run finished');
      })
      .catch((err: unknown) => {
        Object.assign(status, { result: 'failed', message: err instanceof Error ? err.message : String(err) });
        if (!dryRun) this.emit({ kind: 'run', result: 'failed', durationMs: Math.round(performance.now() - started) });
        this.app.log.warn({ err }, 'retention run failed');
      })
      .finally(() => {
        status.finishedAt = new Date(this.options.now()).toISOString();
        this.last = status;
        this.current = undefined;
        this.running = undefined;
      });
    return true;
  }

  status(): { running?: RetentionRunStatus; last?: RetentionRunStatus } {
    return { ...(this.current ? { running: { ...this.current } } : {}), ...(this.last ? { last: { ...this.last } } : {}) };
  }

  async settled(): Promise<void> {
    await this.running;
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.running;
  }

  private emit(event: RetentionRunEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch (err) {
      this.app.log.warn({ err }, 'retention event sink failed');
    }
  }
}

/** A run every `intervalMs`, the first one interval after start-up. */
export function startBackgroundRetention(app: FastifyInstance, runner: RetentionRunner, intervalMs: number): void {
  const timer = setInterval(() => runner.trigger('interval'), intervalMs);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
}
