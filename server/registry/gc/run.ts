// What `berth gc` runs: passes one after another until no due work is left, or one bounded pass.
// Kept apart from the CLI so that the stopping rules are tested without a process.
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { emptySummary, type Collector, type GcAction, type GcSummary } from './collector.js';

export interface GcRunOptions {
  /** Judge and report, change nothing: one pass over everything due (or `limit` items). */
  dryRun: boolean;
  /** One pass of at most this many items. Undefined: passes of `batch` items until nothing due is left. */
  limit: number | undefined;
  batch: number;
  now: () => number;
  signal?: AbortSignal;
  /** Called at most every `progressEveryMs` (default 2000) with the run's totals so far. */
  onProgress?: (totals: GcRunSummary) => void;
  progressEveryMs?: number;
  onAction?: (action: GcAction) => void;
}

/** A pass's summary summed over the run's passes; `remaining` is what the last pass left due. */
export interface GcRunSummary extends GcSummary {
  passes: number;
}

const COUNTED = [
  'examined',
  'manifestsDeleted',
  'blobsQuarantined',
  'blobsDeleted',
  'bytesFreed',
  'linksRemoved',
  'uploadsExpired',
  'kept',
  'deferred',
  'errors',
] as const satisfies readonly (keyof GcSummary)[];

/** `totals` with one more pass added: its counts summed, its `remaining` taken, the run's passes and time set. */
export function plus(totals: GcRunSummary, pass: GcSummary, passes: number, durationMs: number): GcRunSummary {
  const sum: GcRunSummary = { ...totals, passes, remaining: pass.remaining, durationMs };
  for (const key of COUNTED) sum[key] = totals[key] + pass[key];
  return sum;
}

export function emptyRunSummary(dryRun: boolean): GcRunSummary {
  return { ...emptySummary(dryRun), passes: 0 };
}

export async function runGc(collector: Collector, metadata: MetadataStore, options: GcRunOptions): Promise<GcRunSummary> {
  const started = performance.now();
  const every = options.progressEveryMs ?? 2000;
  let lastReport = started;
  let totals = emptyRunSummary(options.dryRun);
  const elapsed = () => Math.round(performance.now() - started);
  for (;;) {
    // A dry run changes nothing, so a second pass would see the same items: it reads all that is due at once.
    const limit = options.limit ?? (options.dryRun ? Math.max(1, (await metadata.gc.queueSize(options.now())).due) : options.batch);
    const before = totals;
    const pass = await collector.pass({
      limit,
      dryRun: options.dryRun,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onAction ? { onAction: options.onAction } : {}),
      progressEveryMs: every,
      onProgress: (sofar) => {
        if (performance.now() - lastReport < every) return;
        lastReport = performance.now();
        options.onProgress?.(plus(before, sofar, before.passes + 1, elapsed()));
      },
    });
    totals = plus(before, pass, before.passes + 1, elapsed());
    if (options.limit !== undefined || options.dryRun || options.signal?.aborted) break;
    // An item that is deferred or fails stays queued; a pass that settled nothing would only meet
    // them again (a pin held, storage refusing deletes): stop, the background passes retry later.
    const settled = pass.examined - pass.deferred - pass.errors;
    if (pass.remaining === 0 || pass.examined === 0 || settled <= 0) break;
  }
  return totals;
}
