// What `berth retention preview` and GET/POST /api/v1/retention/preview show: per repository, the
// verdict on every tag (evaluate.ts, the same judgement a run acts on), the guard's verdict and what
// the untagged rule would delete.
import type { Digest } from '../../../storage-drivers/metadata/types.js';
import { COMBINATION, type Evaluation } from './evaluate.js';
import { policyFor, type RetentionPolicy } from './policy.js';
import type { Retention } from './retention.js';

export interface RepositoryPreview extends Evaluation {
  untagged?: { deleteAfter: string; wouldDelete: Digest[] };
}

export type PreviewEntry = RepositoryPreview | { repository: string; policy: null };

const UNTAGGED_PAGE = 500;

/** Manifests the policy's untagged rule would delete now (checked like a run, changing nothing). */
export async function untaggedDue(retention: Retention, repo: string, policy: RetentionPolicy): Promise<Digest[]> {
  const rule = policy.untagged;
  if (!rule) return [];
  const { metadata, now } = retention.deps;
  const cutoff = now() - retention.deleteAfterMs(rule.deleteAfter);
  const due: Digest[] = [];
  let cursor: string | undefined;
  do {
    const page = await metadata.retention.untagged(repo, cursor, UNTAGGED_PAGE);
    for (const entry of page.entries) {
      if (entry.untaggedAt >= cutoff) continue;
      if (await metadata.gc.deleteManifestIfUnused(repo, entry.digest, { untaggedBefore: cutoff, orphanReferrers: false, dryRun: true }))
        due.push(entry.digest);
    }
    cursor = page.next;
  } while (cursor !== undefined);
  return due.sort();
}

export async function previewRepository(retention: Retention, repo: string, policy: RetentionPolicy): Promise<RepositoryPreview> {
  const evaluation: RepositoryPreview = await retention.judge(repo, policy);
  if (policy.untagged) evaluation.untagged = { deleteAfter: policy.untagged.deleteAfter, wouldDelete: await untaggedDue(retention, repo, policy) };
  return evaluation;
}

/**
 * One entry per repository: the given one (with `policy: null` when no policy matches it), or every
 * repository a policy matches, in byte order.
 */
export async function* preview(retention: Retention, policies: readonly RetentionPolicy[], repository?: string): AsyncGenerator<PreviewEntry> {
  if (repository !== undefined) {
    const policy = policyFor(policies, repository);
    yield policy ? await previewRepository(retention, repository, policy) : { repository, policy: null };
    return;
  }
  let last: string | undefined;
  for (;;) {
    const page = await retention.deps.metadata.listRepositories({ n: 100, last });
    for (const repo of page) {
      const policy = policyFor(policies, repo);
      if (policy) yield await previewRepository(retention, repo, policy);
    }
    if (page.length < 100) return;
    last = page[page.length - 1];
  }
}

function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}

/** The guard's verdict in one line. */
export function guardText(p: Evaluation): string {
  const g = p.guard;
  if (g.verdict === 'ok') return `guard: ok (${percent(g.fraction)} of the tags, at most ${percent(g.limit)} allowed)`;
  return `guard: REFUSED${g.forcible ? ' (a forced run would go ahead)' : ' (even when forced)'}: ${g.message}`;
}

/** The preview for people: a head line per repository, then one line per tag (deleted first). */
export function previewText(entry: PreviewEntry, options: { kept: boolean } = { kept: true }): string {
  if (entry.policy === null) return `${entry.repository}: no retention policy matches it; nothing would be deleted\n`;
  const lines = [
    `${entry.repository}: policy ${JSON.stringify(entry.policy)}: would delete ${entry.deleted} of ${entry.total} tags, keep ${entry.kept} (${COMBINATION})`,
    `  ${guardText(entry)}`,
  ];
  const width = Math.min(40, Math.max(0, ...entry.tags.map((t) => t.tag.length)));
  for (const t of entry.tags) if (t.action === 'delete') lines.push(`  delete ${t.tag.padEnd(width)}  ${t.digest.slice(0, 19)}  ${t.reason}`);
  if (options.kept) for (const t of entry.tags) if (t.action === 'keep') lines.push(`  keep   ${t.tag.padEnd(width)}  ${t.digest.slice(0, 19)}  ${t.reason}`);
  if (entry.untagged) {
    lines.push(`  untagged manifests (no tag for more than ${entry.untagged.deleteAfter}): would delete ${entry.untagged.wouldDelete.length}`);
    for (const d of entry.untagged.wouldDelete) lines.push(`  delete ${d}`);
  }
  return `${lines.join('\n')}\n`;
}
