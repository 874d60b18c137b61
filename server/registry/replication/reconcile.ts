// A rule's reconcile pass: compare source and target tag by tag (HEADs first, nothing downloaded the
// target has) and copy what differs, so an event missed or failed is repaired. One pass per rule at a
// time across every process: the lease `replication:<rule>`, renewed while the pass makes progress.
// A pass that stops making progress for runTimeoutMs stops renewing, so another process takes it
// over and goes on from the cursor (the last source repository finished) in the rule's shared state.
import { setMaxListeners } from 'node:events';
import type { ReplicationMetadata } from '../../../storage-drivers/metadata/replication-types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import type { ReplicationEndpoint } from './endpoint.js';
import { changeRuleState, type OutcomeCounts, type RunSummary } from './rule-state.js';
import type { RuleScope, RuleSync, TagResult } from './sync.js';

export interface ReconcileRule {
  scope: RuleScope;
  sync: RuleSync;
  source: ReplicationEndpoint;
  target: ReplicationEndpoint;
  /** Repository patterns that are plain names: what a source without a catalog is asked for. */
  exactRepositories: readonly string[];
  /** The source repository a target repository came from, when the rule covers it (deletes of repositories gone from the source). */
  sourceName(targetRepo: string): string | undefined;
  concurrency: number;
}

export interface ReconcileDeps {
  metadata: Pick<MetadataStore, 'acquireLease' | 'releaseLease'>;
  records: ReplicationMetadata;
  holder: string;
  leaseMs: number;
  runTimeoutMs: number;
  now(): number;
  /** Every tag's result, and each failure, as they happen. */
  each(result: TagResult | { failed: string; tag: string; error: Error }): void;
}

export type ReconcileResult = { ran: false } | { ran: true; summary: RunSummary };

const PASS_SIGNAL_LISTENERS = 1000;

export function runLeaseName(rule: string): string {
  return `replication:${rule}`;
}

class StalledError extends Error {
  constructor(rule: string, ms: number) {
    super(`the reconcile of rule ${rule} made no progress for ${ms / 1000} s; it is left to another process`);
  }
}

/** One reconcile pass of `rule`, unless another process runs one; resumes an interrupted pass. */
export async function reconcile(rule: ReconcileRule, deps: ReconcileDeps, outer: AbortSignal): Promise<ReconcileResult> {
  const name = rule.scope.name;
  const lease = runLeaseName(name);
  if (!(await deps.metadata.acquireLease(lease, deps.holder, deps.leaseMs))) return { ran: false };
  const controller = new AbortController();
  // Every request of the pass listens on it: tags in parallel × blobs in parallel × a few each.
  setMaxListeners(PASS_SIGNAL_LISTENERS, controller.signal);
  const onAbort = () => controller.abort(outer.reason);
  outer.addEventListener('abort', onAbort, { once: true });
  let progressAt = deps.now();
  const keeper = setInterval(() => {
    if (deps.now() - progressAt > deps.runTimeoutMs) {
      controller.abort(new StalledError(name, deps.runTimeoutMs));
      return;
    }
    deps.metadata.acquireLease(lease, deps.holder, deps.leaseMs).then(
      (held) => {
        if (!held) controller.abort(new Error(`the reconcile lease of rule ${name} was taken over`));
      },
      () => undefined,
    );
  }, deps.leaseMs / 3);
  keeper.unref();
  const signal = controller.signal;
  const startedAt = deps.now();
  const summary: RunSummary = { holder: deps.holder, startedAt, repositories: 0, tags: {}, failures: 0, bytes: 0 };
  try {
    const state = await changeRuleState(deps.records, name, (s) => ({
      ...s,
      passStartedAt: s.cursor !== undefined ? (s.passStartedAt ?? startedAt) : startedAt,
      running: { holder: deps.holder, startedAt, progressAt: startedAt, repositories: 0, failures: 0 },
    }));
    const cursor = state.cursor;
    for (const repo of await sourceRepositories(rule, signal)) {
      if (cursor !== undefined && repo <= cursor) continue;
      summary.failures += await rule.sync.reconcileRepository(repo, {
        signal,
        concurrency: rule.concurrency,
        each: (result) => {
          progressAt = deps.now();
          if ('failed' in result) {
            summary.lastError = `${result.failed}:${result.tag}: ${result.error.message}`;
          } else {
            count(summary.tags, result.outcome);
            summary.bytes += result.bytes;
          }
          deps.each(result);
        },
      });
      summary.repositories++;
      progressAt = deps.now();
      await changeRuleState(deps.records, name, (s) => ({
        ...s,
        cursor: repo,
        running: { holder: deps.holder, startedAt, progressAt, repositories: summary.repositories, failures: summary.failures },
      }));
    }
    summary.finishedAt = deps.now();
    summary.result = summary.failures > 0 ? 'partial' : 'ok';
    await finish(deps, name, summary);
    return { ran: true, summary };
  } catch (err) {
    summary.finishedAt = deps.now();
    summary.result = 'failed';
    summary.lastError = signal.aborted && signal.reason instanceof Error ? signal.reason.message : err instanceof Error ? err.message : String(err);
    // The cursor stays: the next pass, here or elsewhere, goes on after the last repository finished.
    await changeRuleState(deps.records, name, (s) => ({ ...s, running: undefined, lastRun: summary })).catch(() => undefined);
    if (outer.aborted) throw err;
    return { ran: true, summary };
  } finally {
    clearInterval(keeper);
    outer.removeEventListener('abort', onAbort);
    await deps.metadata.releaseLease(lease, deps.holder).catch(() => undefined);
  }
}

async function finish(deps: ReconcileDeps, name: string, summary: RunSummary): Promise<void> {
  await changeRuleState(deps.records, name, (s) => ({ ...s, cursor: undefined, passStartedAt: undefined, running: undefined, lastRun: summary }));
}

function count(counts: OutcomeCounts, outcome: string): void {
  counts[outcome] = (counts[outcome] ?? 0) + 1;
}

/**
 * The source repositories the rule covers, in order: the source's catalog (or, without one, the
 * rule's plain names), and with deletes the target repositories the rule made whose source is gone.
 */
async function sourceRepositories(rule: ReconcileRule, signal: AbortSignal): Promise<string[]> {
  const found = new Set<string>();
  try {
    for await (const repo of rule.source.repositories(signal)) if (rule.scope.coversRepository(repo)) found.add(repo);
  } catch (err) {
    if (signal.aborted || rule.exactRepositories.length === 0) throw err;
  }
  for (const repo of rule.exactRepositories) found.add(repo);
  if (rule.scope.config.deletes) {
    try {
      for await (const repo of rule.target.repositories(signal)) {
        const source = rule.sourceName(repo);
        if (source !== undefined && rule.scope.coversRepository(source)) found.add(source);
      }
    } catch (err) {
      // A target without a catalog: repositories gone from the source are not found, the rest still is.
      if (signal.aborted) throw err;
    }
  }
  return [...found].sort();
}
