// Background garbage collection: a pass every interval in every process. Passes in several processes
// may overlap; each decision is a compare-and-set, so they only share the work.
import type { FastifyInstance } from 'fastify';
import { GcRefusedError, type Collector, type GcAction, type GcSummary } from './collector.js';

export type GcEvent =
  { kind: 'pass'; result: 'ok'; summary: GcSummary } | { kind: 'pass'; result: 'refused' | 'failed'; durationMs: number } | ({ kind: 'action' } & GcAction);

export interface BackgroundGcOptions {
  intervalMs: number;
  limit: number;
  now: () => number;
  onEvent?: (event: GcEvent) => void;
}

export function startBackgroundGc(app: FastifyInstance, collector: Collector, options: BackgroundGcOptions): void {
  const stop = new AbortController();
  let running: Promise<void> | undefined;
  let refusedLogged = false;
  const emit = (event: GcEvent) => {
    try {
      options.onEvent?.(event);
    } catch (err) {
      app.log.warn({ err }, 'gc event sink failed');
    }
  };
  const pass = () => {
    if (running) return;
    const started = performance.now();
    running = collector
      .pass({ limit: options.limit, signal: stop.signal, onAction: (action) => emit({ kind: 'action', ...action }) })
      .then((summary) => {
        refusedLogged = false;
        emit({ kind: 'pass', result: 'ok', summary });
        if (summary.examined > 0) app.log.info({ gc: summary }, 'gc pass finished');
      })
      .catch((err: unknown) => {
        const durationMs = Math.round(performance.now() - started);
        if (err instanceof GcRefusedError) {
          emit({ kind: 'pass', result: 'refused', durationMs });
          // Said once, not every interval.
          if (!refusedLogged) app.log.warn(err.message);
          refusedLogged = true;
        } else if (!stop.signal.aborted) {
          emit({ kind: 'pass', result: 'failed', durationMs });
          app.log.warn({ err }, 'gc pass failed');
        }
      })
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(pass, options.intervalMs);
  timer.unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
    stop.abort();
    await running;
  });
}
