// A rule's shared status document (ReplicationMetadata's rule state): the reconcile cursor, the pass
// running now with its progress, and the last pass's outcome. Changed by compare-and-set, so the
// trigger lane and reconcile passes in several processes never lose each other's updates.
import type { ReplicationMetadata } from '../../../storage-drivers/metadata/replication-types.js';

export type OutcomeCounts = Partial<Record<string, number>>;

export interface RunSummary {
  holder: string;
  startedAt: number;
  finishedAt?: number;
  /** ok: every tag in step or settled by policy; partial: some tags failed; failed: the pass stopped. */
  result?: 'ok' | 'partial' | 'failed';
  repositories: number;
  /** Tags by outcome (copied, in_sync, conflict_skipped, …). */
  tags: OutcomeCounts;
  failures: number;
  bytes: number;
  lastError?: string;
}

export interface RuleState {
  /** The last source repository the interrupted pass finished; the next pass goes on after it. */
  cursor?: string | undefined;
  passStartedAt?: number | undefined;
  running?: { holder: string; startedAt: number; progressAt: number; repositories: number; failures: number } | undefined;
  lastRun?: RunSummary | undefined;
}

const CAS_ATTEMPTS = 20;

export async function readRuleState(records: ReplicationMetadata, rule: string): Promise<RuleState> {
  const stored = await records.getRuleState(rule);
  return stored ? (JSON.parse(stored.state) as RuleState) : {};
}

/** Applies `change` to the stored state, again on a concurrent update; returns the state stored. */
export async function changeRuleState(records: ReplicationMetadata, rule: string, change: (state: RuleState) => RuleState): Promise<RuleState> {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const stored = await records.getRuleState(rule);
    const current = stored ? (JSON.parse(stored.state) as RuleState) : {};
    const next = change(current);
    if (await records.updateRuleState(rule, stored?.revision ?? 0, JSON.stringify(next))) return next;
  }
  throw new Error(`the state of replication rule ${rule} kept changing under this update; it is tried again on the next pass`);
}
