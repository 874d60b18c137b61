// The part GC and retention share about running inside a server process: one run at a time per
// process, started by the interval timer or a request, and what the status endpoints show (the run
// going now with its progress, and the last one). What a run does and how its outcome is judged and
// logged stays with the feature.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';

export interface RunStatus<Summary, Result extends string> {
  /** Who started it: the interval timer or a request. */
  trigger: 'interval' | 'request';
  dryRun: boolean;
  startedAt: string;
  /** Counts so far (running) or final (finished). */
  summary?: Summary;
  result?: Result;
  finishedAt?: string;
  /** Why it was refused or failed. */
  message?: string;
}

export interface RunnerStatus<Summary, Result extends string> {
  running?: RunStatus<Summary, Result>;
  last?: RunStatus<Summary, Result>;
  /** ISO time the interval timer starts the next run; absent when the feature runs on request only. */
  next?: string;
}

export interface BackgroundRunnerOptions<Event> {
  log: FastifyBaseLogger;
  now: () => number;
  /** Names the feature in the line logged when the event sink throws. */
  name: string;
  onEvent?: (event: Event) => void;
}

export class BackgroundRunner<Summary, Result extends string, Event> {
  private readonly stop = new AbortController();
  private running: Promise<void> | undefined;
  private current: RunStatus<Summary, Result> | undefined;
  private last: RunStatus<Summary, Result> | undefined;
  /** When the interval timer ticks next (by the runner's clock); undefined without one. */
  private nextAt: number | undefined;

  constructor(private readonly options: BackgroundRunnerOptions<Event>) {}

  /** Aborted once close() is called; each run takes it. */
  get signal(): AbortSignal {
    return this.stop.signal;
  }

  /**
   * Starts `run` unless a run goes in this process already or the runner is closed; true when it
   * started. `run` fills in the status it is given and must not reject.
   */
  start(trigger: RunStatus<Summary, Result>['trigger'], dryRun: boolean, run: (status: RunStatus<Summary, Result>) => Promise<void>): boolean {
    if (this.running || this.stop.signal.aborted) return false;
    const status: RunStatus<Summary, Result> = { trigger, dryRun, startedAt: new Date(this.options.now()).toISOString() };
    this.current = status;
    this.running = run(status).finally(() => {
      status.finishedAt = new Date(this.options.now()).toISOString();
      this.last = status;
      this.current = undefined;
      this.running = undefined;
    });
    return true;
  }

  /** `next`: when the interval timer starts the next run in this process (it skips a tick while one runs). */
  status(): RunnerStatus<Summary, Result> {
    return {
      ...(this.current ? { running: { ...this.current } } : {}),
      ...(this.last ? { last: { ...this.last } } : {}),
      ...(this.nextAt === undefined ? {} : { next: new Date(this.nextAt).toISOString() }),
    };
  }

  /** A tick every `intervalMs`, the first one interval after now; stopped when the app closes. */
  every(app: FastifyInstance, intervalMs: number, tick: () => void): void {
    this.nextAt = this.options.now() + intervalMs;
    const timer = setInterval(() => {
      this.nextAt = this.options.now() + intervalMs;
      tick();
    }, intervalMs);
    timer.unref();
    app.addHook('onClose', async () => {
      clearInterval(timer);
      this.nextAt = undefined;
    });
  }

  /** Resolves once the run going now (if any) has ended. */
  async settled(): Promise<void> {
    await this.running;
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.running;
  }

  /** A sink that throws (metrics, audit) must not end the run. */
  emit(event: Event): void {
    try {
      this.options.onEvent?.(event);
    } catch (err) {
      this.options.log.warn({ err }, `${this.options.name} event sink failed`);
    }
  }
}
