// The retention engine's judgement: a pure function of the tags, their pulls, the time and one policy.
// The runner, the preview and the dry run all call it, so what a preview shows is what a run does.
// A tag is kept if ANY keep rule keeps it; every verdict names the rules that kept it, or says for
// each rule why it did not.
import type { Digest, TagDetail } from '../../../storage-drivers/metadata/types.js';
import { firstMatch, parseDuration, tagPatternRegExp, type RetentionPolicy } from './policy.js';

export interface PullInfo {
  pulls: number;
  lastPulledAt?: number;
}

/** Pull statistics per tag (the pull-statistics feature provides them); tags absent were never pulled. */
export type PullsOf = (repo: string, tags: string[]) => Promise<Map<string, PullInfo>>;
/** The name of the immutable-tag rule protecting `tag`, if any. */
export type IsImmutable = (repo: string, tag: string) => string | undefined;

export const NO_PULLS: PullsOf = async () => new Map();
export const NOTHING_IMMUTABLE: IsImmutable = () => undefined;

export interface TagVerdict {
  tag: string;
  digest: Digest;
  pushedAt: number;
  lastPulledAt?: number;
  action: 'keep' | 'delete';
  /** What kept it: keep rules, `latest`, an immutable rule, or being outside the policy's tags. Empty when deleted. */
  keptBy: string[];
  /** One line for people: why kept (every reason) or why deleted (every rule's miss). */
  reason: string;
}

export type GuardVerdict =
  | { verdict: 'ok'; fraction: number; limit: number }
  | { verdict: 'refused'; rule: 'fraction' | 'all'; fraction: number; limit: number; forcible: boolean; message: string };

export interface Evaluation {
  repository: string;
  policy: string;
  now: number;
  total: number;
  kept: number;
  deleted: number;
  /** Every tag in byte order. */
  tags: TagVerdict[];
  guard: GuardVerdict;
}

export interface EvaluationInput {
  repository: string;
  policy: RetentionPolicy;
  tags: readonly TagDetail[];
  pulls: ReadonlyMap<string, PullInfo>;
  now: number;
  isImmutable: IsImmutable;
}

export const COMBINATION = 'a tag is kept if any keep rule keeps it';
const UNGROUPED = '(no group)';

/** "3d 4h"-style age for reasons. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

function groupOf(groupBy: RegExp | undefined, tag: string): string {
  if (!groupBy) return '';
  const m = groupBy.exec(tag);
  if (!m) return UNGROUPED;
  return m
    .slice(1)
    .filter((part) => part !== undefined)
    .join('/');
}

function inGroup(group: string): string {
  return group === '' ? '' : ` in group ${JSON.stringify(group)}`;
}

/** Ranks (0 = most recent) by `at` descending within each group; ties broken by tag, newest name first. */
function ranks(indices: number[], at: (i: number) => number, tagOf: (i: number) => string): Map<number, number> {
  const order = [...indices].sort((a, b) => at(b) - at(a) || (tagOf(a) < tagOf(b) ? 1 : tagOf(a) > tagOf(b) ? -1 : 0));
  const out = new Map<number, number>();
  order.forEach((i, rank) => out.set(i, rank));
  return out;
}

export function evaluate(input: EvaluationInput): Evaluation {
  const { policy, tags, pulls, now } = input;
  const groupBy = policy.groupBy === undefined ? undefined : new RegExp(policy.groupBy);
  const pushedWithin = policy.keepPushedWithin === undefined ? undefined : (parseDuration(policy.keepPushedWithin) as number);
  const pulledWithin = policy.keepPulledWithin === undefined ? undefined : (parseDuration(policy.keepPulledWithin) as number);
  const scope = policy.tags?.map(tagPatternRegExp);

  // Groups of in-scope tags (by index), for the "last N" rules.
  const groups = new Map<string, number[]>();
  const group: string[] = new Array<string>(tags.length);
  const inScope: boolean[] = new Array<boolean>(tags.length);
  for (let i = 0; i < tags.length; i++) {
    const tag = (tags[i] as TagDetail).tag;
    inScope[i] = scope === undefined || scope.some((re) => re.test(tag));
    if (!inScope[i]) continue;
    const g = groupOf(groupBy, tag);
    group[i] = g;
    let members = groups.get(g);
    if (!members) groups.set(g, (members = []));
    members.push(i);
  }
  const tagOf = (i: number) => (tags[i] as TagDetail).tag;
  const pushRank = new Map<number, number>();
  const pullRank = new Map<number, number>();
  for (const members of groups.values()) {
    if (policy.keepLastPushed !== undefined) {
      for (const [i, r] of ranks(members, (i) => (tags[i] as TagDetail).pushedAt, tagOf)) pushRank.set(i, r);
    }
    if (policy.keepLastPulled !== undefined) {
      const pulled = members.filter((i) => pulls.get(tagOf(i))?.lastPulledAt !== undefined);
      for (const [i, r] of ranks(pulled, (i) => pulls.get(tagOf(i))?.lastPulledAt as number, tagOf)) pullRank.set(i, r);
    }
  }

  const verdicts: TagVerdict[] = [];
  let deleted = 0;
  for (let i = 0; i < tags.length; i++) {
    const detail = tags[i] as TagDetail;
    const { tag } = detail;
    const pull = pulls.get(tag);
    const base = { tag, digest: detail.digest, pushedAt: detail.pushedAt, ...(pull?.lastPulledAt !== undefined ? { lastPulledAt: pull.lastPulledAt } : {}) };
    if (!inScope[i]) {
      verdicts.push({ ...base, action: 'keep', keptBy: ['scope'], reason: "kept: outside the policy's tags" });
      continue;
    }
    const g = group[i] as string;
    const kept: string[] = [];
    const missed: string[] = [];
    if (tag === 'latest' && !policy.deleteLatest) kept.push('latest (set deleteLatest to let the rules decide)');
    const immutable = input.isImmutable(input.repository, tag);
    if (immutable !== undefined && !policy.deleteImmutable)
      kept.push(`immutable (rule ${JSON.stringify(immutable)}; set deleteImmutable to let the rules decide)`);
    if (policy.keepLastPushed !== undefined) {
      const r = pushRank.get(i) as number;
      const what = `#${r + 1} most recently pushed${inGroup(g)}`;
      (r < policy.keepLastPushed ? kept : missed).push(`keepLastPushed ${policy.keepLastPushed}: ${what}`);
    }
    if (policy.keepLastPulled !== undefined) {
      const r = pullRank.get(i);
      const what = r === undefined ? 'never pulled' : `#${r + 1} most recently pulled${inGroup(g)}`;
      (r !== undefined && r < policy.keepLastPulled ? kept : missed).push(`keepLastPulled ${policy.keepLastPulled}: ${what}`);
    }
    if (pushedWithin !== undefined) {
      const age = now - detail.pushedAt;
      (age <= pushedWithin ? kept : missed).push(`keepPushedWithin ${policy.keepPushedWithin as string}: pushed ${formatAge(age)} ago`);
    }
    if (pulledWithin !== undefined) {
      const last = pull?.lastPulledAt;
      const age = last === undefined ? undefined : now - last;
      const what = age === undefined ? 'never pulled' : `pulled ${formatAge(age)} ago`;
      (age !== undefined && age <= pulledWithin ? kept : missed).push(`keepPulledWithin ${policy.keepPulledWithin as string}: ${what}`);
    }
    if (policy.keepTags !== undefined) {
      const hit = firstMatch(policy.keepTags, tag);
      if (hit !== undefined) kept.push(`keepTags: matches ${JSON.stringify(hit)}`);
      else missed.push('keepTags: matches none');
    }
    if (kept.length > 0) {
      verdicts.push({ ...base, action: 'keep', keptBy: kept.map((k) => k.split(/[ :]/, 1)[0] as string), reason: `kept by ${kept.join('; ')}` });
    } else {
      deleted++;
      verdicts.push({ ...base, action: 'delete', keptBy: [], reason: `deleted: no keep rule keeps it (${COMBINATION}): ${missed.join('; ')}` });
    }
  }
  return {
    repository: input.repository,
    policy: policy.name,
    now,
    total: tags.length,
    kept: tags.length - deleted,
    deleted,
    tags: verdicts,
    guard: guard(policy, tags.length, deleted),
  };
}

/**
 * The guard: a run deleting more than maxDeleteFraction of a repository's tags deletes nothing there
 * (a forced run may go ahead); one that would delete every tag is refused, forced or not.
 */
export function guard(policy: RetentionPolicy, total: number, deleted: number): GuardVerdict {
  const fraction = total === 0 ? 0 : deleted / total;
  const limit = policy.maxDeleteFraction;
  if (total > 0 && deleted === total) {
    return {
      verdict: 'refused',
      rule: 'all',
      fraction,
      limit,
      forcible: false,
      message: `policy ${JSON.stringify(policy.name)} would delete all ${total} tags: refused whatever the flags (a policy must leave something)`,
    };
  }
  if (fraction > limit) {
    return {
      verdict: 'refused',
      rule: 'fraction',
      fraction,
      limit,
      forcible: true,
      message:
        `policy ${JSON.stringify(policy.name)} would delete ${deleted} of ${total} tags (${(fraction * 100).toFixed(1)}%), ` +
        `more than maxDeleteFraction ${limit}: nothing deleted; check the preview, then raise maxDeleteFraction or run \`berth retention run --force\``,
    };
  }
  return { verdict: 'ok', fraction, limit };
}
