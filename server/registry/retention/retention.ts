// The retention runner's work: judge a repository (evaluate.ts) and act on the verdict. A run walks
// the repositories in byte order from the shared cursor, at most `batch` of them, each under a lease
// `retention:<repo>` so two processes never handle one repository at once; it saves the cursor after
// each one, so a run that is stopped (or a process that dies) leaves the rest to the next run, in any
// process. Every tag is deleted only while it still points at the digest that was judged.
import type { GcUsage } from '../gc/usage.js';
import type { Digest, MetadataStore, TagDetail } from '../../../storage-drivers/metadata/types.js';
import { evaluate, type Evaluation, type IsImmutable, type PullInfo, type PullsOf } from './evaluate.js';
import { parseDuration, policyFor, type RetentionPolicy } from './policy.js';
import type { EventOrigin } from '../../../storage-drivers/metadata/event-types.js';

export interface RetentionDeps {
  metadata: MetadataStore;
  usage: Pick<GcUsage, 'queueUntagged' | 'queueAfterManifestDelete'>;
  pullsOf: PullsOf;
  isImmutable: IsImmutable;
  now: () => number;
  /** Unique per process: the lease holder. */
  holder: string;
  /** How long a repository's lease lasts; renewed while deleting. */
  leaseMs: number;
}

/** Retention's changes in the event outbox. */
const RETENTION_ORIGIN: EventOrigin = { actor: 'retention', actorKind: 'system' };

export type RepositoryResult = 'done' | 'busy' | 'refused' | 'lost_lease' | 'failed' | 'stopped';

export type RetentionEvent =
  | { kind: 'tag_deleted'; repository: string; tag: string; digest: Digest; policy: string; reason: string }
  | { kind: 'manifest_deleted'; repository: string; digest: Digest; policy: string; reason: string }
  | { kind: 'refused'; repository: string; policy: string; rule: 'fraction' | 'all'; deleted: number; total: number; message: string }
  | { kind: 'repository'; repository: string; policy: string; result: RepositoryResult; deleted: number; message?: string };

export interface RunOptions {
  policies: readonly RetentionPolicy[];
  dryRun: boolean;
  /** Lets a run go past the maxDeleteFraction guard (never past "every tag"). */
  force: boolean;
  /** At most this many repositories (with a policy) per run. */
  batch: number;
  /** Only this repository; the shared cursor is neither read nor moved. */
  repository?: string | undefined;
  signal?: AbortSignal | undefined;
  onEvent?: ((event: RetentionEvent) => void) | undefined;
  /** After each repository, with the totals so far. */
  onProgress?: ((summary: RunSummary) => void) | undefined;
}

export interface RunSummary {
  dryRun: boolean;
  forced: boolean;
  startedAt: number;
  durationMs: number;
  /** Repositories judged (with a policy), and of those: skipped while another process held them, refused by the guard, failed. */
  repositories: number;
  busy: number;
  refused: number;
  failed: number;
  /** Tags deleted (or, dry run, that would be). */
  tagsDeleted: number;
  /** Tags judged for deletion that had moved (re-pushed) or gone before the delete: left alone. */
  tagsChanged: number;
  /** Untagged manifests deleted by the policies' untagged rules (or that would be). */
  manifestsDeleted: number;
  /** Where the next run goes on (the last repository finished); absent when the walk reached the end. */
  cursor?: string;
  /** The walk over all repositories reached the end in this run. */
  cycleComplete: boolean;
  stopped: boolean;
}

/** What is kept in metadata.retention's state document. */
export interface RetentionState {
  cursor?: string;
  lastRun?: RunSummary;
  lastCycleCompletedAt?: number;
}

const TAG_PAGE = 1000;
const REPO_PAGE = 100;
const UNTAGGED_PAGE = 500;

export function usesPulls(policy: RetentionPolicy): boolean {
  return policy.keepLastPulled !== undefined || policy.keepPulledWithin !== undefined;
}

export class Retention {
  constructor(readonly deps: RetentionDeps) {}

  deleteAfterMs(text: string): number {
    return parseDuration(text) as number;
  }

  async loadState(): Promise<RetentionState> {
    const text = await this.deps.metadata.retention.loadState();
    if (text === undefined) return {};
    try {
      return JSON.parse(text) as RetentionState;
    } catch {
      // An unreadable state only costs the cursor: the walk starts over, which is harmless.
      return {};
    }
  }

  /** All of a repository's tags with their details, in byte order. */
  async tagsOf(repo: string): Promise<TagDetail[]> {
    const tags: TagDetail[] = [];
    let last: string | undefined;
    for (;;) {
      const page = await this.deps.metadata.listTagDetails(repo, { n: TAG_PAGE, last });
      for (const t of page) tags.push(t);
      if (page.length < TAG_PAGE) return tags;
      last = page[page.length - 1]!.tag;
    }
  }

  /** The verdict on every tag of `repo` under `policy`, as a run would act on it now. */
  async judge(repo: string, policy: RetentionPolicy): Promise<Evaluation> {
    const tags = await this.tagsOf(repo);
    const pulls: Map<string, PullInfo> =
      usesPulls(policy) && tags.length > 0
        ? await this.deps.pullsOf(
            repo,
            tags.map((t) => t.tag),
          )
        : new Map();
    return evaluate({ repository: repo, policy, tags, pulls, now: this.deps.now(), isImmutable: this.deps.isImmutable });
  }

  async run(options: RunOptions): Promise<RunSummary> {
    const started = performance.now();
    const summary: RunSummary = {
      dryRun: options.dryRun,
      forced: options.force,
      startedAt: this.deps.now(),
      durationMs: 0,
      repositories: 0,
      busy: 0,
      refused: 0,
      failed: 0,
      tagsDeleted: 0,
      tagsChanged: 0,
      manifestsDeleted: 0,
      cycleComplete: false,
      stopped: false,
    };
    const finish = () => {
      summary.durationMs = Math.round(performance.now() - started);
      return summary;
    };
    if (options.repository !== undefined) {
      const policy = policyFor(options.policies, options.repository);
      if (policy) await this.handle(options.repository, policy, options, summary);
      return finish();
    }
    const state = await this.loadState();
    let last = state.cursor;
    if (last !== undefined) summary.cursor = last;
    for (;;) {
      const page = await this.deps.metadata.listRepositories({ n: REPO_PAGE, last });
      for (const repo of page) {
        if (options.signal?.aborted) summary.stopped = true;
        if (summary.stopped || summary.repositories >= options.batch) return this.end(state, summary, options, finish);
        const policy = policyFor(options.policies, repo);
        if (policy) {
          const result = await this.handle(repo, policy, options, summary);
          if (result === 'stopped') {
            summary.stopped = true;
            return this.end(state, summary, options, finish);
          }
        }
        summary.cursor = last = repo;
        if (policy) {
          if (!options.dryRun) await this.save({ ...state, cursor: repo });
          options.onProgress?.({ ...finish() });
        }
      }
      if (page.length < REPO_PAGE) break;
    }
    summary.cycleComplete = true;
    delete summary.cursor;
    return this.end(state, summary, options, finish);
  }

  private async end(state: RetentionState, summary: RunSummary, options: RunOptions, finish: () => RunSummary): Promise<RunSummary> {
    finish();
    if (!options.dryRun) {
      const next: RetentionState = {
        lastRun: summary,
        ...(state.lastCycleCompletedAt !== undefined ? { lastCycleCompletedAt: state.lastCycleCompletedAt } : {}),
      };
      if (summary.cursor !== undefined) next.cursor = summary.cursor;
      if (summary.cycleComplete) next.lastCycleCompletedAt = this.deps.now();
      await this.save(next);
    }
    return summary;
  }

  private async save(state: RetentionState): Promise<void> {
    await this.deps.metadata.retention.saveState(JSON.stringify(state));
  }

  private emit(options: RunOptions, event: RetentionEvent): void {
    options.onEvent?.(event);
  }

  /** One repository under its lease. */
  private async handle(repo: string, policy: RetentionPolicy, options: RunOptions, summary: RunSummary): Promise<RepositoryResult> {
    const { metadata, holder, leaseMs } = this.deps;
    const lease = `retention:${repo}`;
    summary.repositories++;
    const report = (result: RepositoryResult, deleted: number, message?: string): RepositoryResult => {
      this.emit(options, { kind: 'repository', repository: repo, policy: policy.name, result, deleted, ...(message !== undefined ? { message } : {}) });
      return result;
    };
    // A dry run changes nothing, so it takes no lease: it must not make a real run skip the repository.
    const leased = !options.dryRun;
    if (leased && !(await metadata.acquireLease(lease, holder, leaseMs))) {
      summary.busy++;
      return report('busy', 0, 'another process is handling it');
    }
    try {
      const verdict = await this.judge(repo, policy);
      const { guard } = verdict;
      if (guard.verdict === 'refused' && !(options.force && guard.forcible)) {
        summary.refused++;
        this.emit(options, {
          kind: 'refused',
          repository: repo,
          policy: policy.name,
          rule: guard.rule,
          deleted: verdict.deleted,
          total: verdict.total,
          message: guard.message,
        });
        return report('refused', 0, guard.message);
      }
      let deleted = 0;
      let renewedAt = this.deps.now();
      const untagged = new Set<Digest>();
      for (const t of verdict.tags) {
        if (t.action !== 'delete') continue;
        if (options.signal?.aborted) return report('stopped', deleted);
        if (options.dryRun) {
          summary.tagsDeleted++;
          deleted++;
          continue;
        }
        // Renewed well before it runs out, so another process cannot take the repository over mid-run;
        // lost anyway (a long stall): stop, the other process judges afresh.
        if (this.deps.now() - renewedAt > leaseMs / 3) {
          if (!(await metadata.acquireLease(lease, holder, leaseMs))) {
            summary.failed++;
            return report('lost_lease', deleted, 'the lease ran out mid-run; another process may have taken the repository over');
          }
          renewedAt = this.deps.now();
        }
        // Only while the tag still points where it was judged: a tag re-pushed since survives.
        if (await metadata.deleteTag(repo, t.tag, { expected: t.digest, event: { ...RETENTION_ORIGIN, policy: policy.name, reason: t.reason } })) {
          summary.tagsDeleted++;
          deleted++;
          untagged.add(t.digest);
          this.emit(options, { kind: 'tag_deleted', repository: repo, tag: t.tag, digest: t.digest, policy: policy.name, reason: t.reason });
        } else summary.tagsChanged++;
      }
      // A digest another (kept) tag still points at stays: GC judges every queued one against its tags.
      if (untagged.size > 0) await this.deps.usage.queueUntagged(repo, [...untagged]);
      if (policy.untagged) await this.untagged(repo, policy, options, summary);
      return report('done', deleted);
    } catch (err) {
      if (options.signal?.aborted) return report('stopped', 0);
      summary.failed++;
      return report('failed', 0, err instanceof Error ? err.message : String(err));
    } finally {
      if (leased) await metadata.releaseLease(lease, holder).catch(() => undefined);
    }
  }

  /** The policy's untagged rule: manifests that lost their last tag longer than deleteAfter ago. */
  private async untagged(repo: string, policy: RetentionPolicy, options: RunOptions, summary: RunSummary): Promise<void> {
    const rule = policy.untagged!;
    const cutoff = this.deps.now() - (parseDuration(rule.deleteAfter) as number);
    const { metadata } = this.deps;
    let cursor: string | undefined;
    do {
      const page = await metadata.retention.untagged(repo, cursor, UNTAGGED_PAGE);
      for (const entry of page.entries) {
        if (entry.untaggedAt >= cutoff) continue;
        if (options.signal?.aborted) return;
        // One atomic check: no tag, no index in the repository keeps it, untagged long enough.
        const reason = `untagged: no tag for more than ${rule.deleteAfter}`;
        const record = await metadata.gc.deleteManifestIfUnused(repo, entry.digest, {
          untaggedBefore: cutoff,
          orphanReferrers: false,
          dryRun: options.dryRun,
          event: { ...RETENTION_ORIGIN, policy: policy.name, reason },
        });
        if (!record) continue;
        summary.manifestsDeleted++;
        if (options.dryRun) continue;
        const referrers = (await metadata.listReferrers(repo, entry.digest)).map((r) => r.digest);
        await this.deps.usage.queueAfterManifestDelete(repo, record, referrers);
        this.emit(options, {
          kind: 'manifest_deleted',
          repository: repo,
          digest: entry.digest,
          policy: policy.name,
          reason,
        });
      }
      cursor = page.next;
    } while (cursor !== undefined);
  }
}
