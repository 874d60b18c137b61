// The pure retention judgement: each rule, how rules combine, what is protected, the guard.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluate, NOTHING_IMMUTABLE, type IsImmutable, type PullInfo } from '../../server/registry/retention/evaluate.js';
import { policyFor, retentionPoliciesSchema, retentionPolicySchema, type RetentionPolicyInput } from '../../server/registry/retention/policy.js';
import type { TagDetail } from '../../storage-drivers/metadata/types.js';
import { ConfigError, parseConfig } from '../../server/config.js';

const DAY = 86_400_000;
const NOW = 1_800_000_000_000;

function tag(name: string, ageDays: number, digest = `sha256:${name}`): TagDetail {
  return { tag: name, digest, pushedAt: NOW - ageDays * DAY };
}

function run(
  policy: Omit<RetentionPolicyInput, 'name' | 'repositories'>,
  tags: TagDetail[],
  pulls: Record<string, PullInfo> = {},
  isImmutable: IsImmutable = NOTHING_IMMUTABLE,
) {
  const parsed = retentionPolicySchema.parse({ name: 'p', repositories: ['**'], maxDeleteFraction: 1, ...policy });
  const sorted = [...tags].sort((a, b) => (a.tag < b.tag ? -1 : 1));
  return evaluate({ repository: 'r', policy: parsed, tags: sorted, pulls: new Map(Object.entries(pulls)), now: NOW, isImmutable });
}

function deleted(result: ReturnType<typeof run>): string[] {
  return result.tags.filter((t) => t.action === 'delete').map((t) => t.tag);
}

describe('retention evaluation', () => {
  it('keepLastPushed keeps the N most recently pushed', () => {
    const result = run({ keepLastPushed: 2 }, [tag('a', 5), tag('b', 1), tag('c', 3), tag('d', 2)]);
    assert.deepEqual(deleted(result), ['a', 'c']);
    assert.match(result.tags.find((t) => t.tag === 'b')!.reason, /kept by keepLastPushed 2: #1 most recently pushed/);
    assert.match(result.tags.find((t) => t.tag === 'a')!.reason, /any keep rule keeps it.*#4 most recently pushed/);
  });

  it('keepLastPushed counts per groupBy group', () => {
    const tags = ['main-aaaaaaa', 'main-bbbbbbb', 'main-ccccccc', 'dev-ddddddd', 'dev-eeeeeee', 'v1.0.0'].map((t, i) => tag(t, i));
    const result = run({ keepLastPushed: 1, groupBy: '^(?<branch>.+)-[0-9a-f]{7,}$' }, tags);
    assert.deepEqual(deleted(result), ['dev-eeeeeee', 'main-bbbbbbb', 'main-ccccccc']);
    assert.match(result.tags.find((t) => t.tag === 'dev-ddddddd')!.reason, /in group "dev"/);
    assert.match(result.tags.find((t) => t.tag === 'v1.0.0')!.reason, /in group "\(no group\)"/);
  });

  it('keepTags keeps globs and /regexes/', () => {
    const result = run({ keepTags: ['v*', '/^release-\\d+$/'] }, [tag('v1', 9), tag('release-7', 9), tag('release-x', 9), tag('dev', 9)]);
    assert.deepEqual(deleted(result), ['dev', 'release-x']);
    assert.match(result.tags.find((t) => t.tag === 'release-7')!.reason, /keepTags: matches "\/\^release-/);
  });

  it('keepPushedWithin and keepPulledWithin keep by age', () => {
    const pulls = { old: { pulls: 3, lastPulledAt: NOW - 2 * DAY } };
    const result = run({ keepPushedWithin: '7d', keepPulledWithin: '30d' }, [tag('new', 1), tag('old', 60), tag('stale', 60)], pulls);
    assert.deepEqual(deleted(result), ['stale']);
    assert.match(result.tags.find((t) => t.tag === 'old')!.reason, /keepPulledWithin 30d: pulled 2d ago/);
    assert.match(result.tags.find((t) => t.tag === 'stale')!.reason, /keepPushedWithin 7d: pushed 60d ago; keepPulledWithin 30d: never pulled/);
  });

  it('keepLastPulled keeps the N most recently pulled; never-pulled tags are not kept by it', () => {
    const pulls = { a: { pulls: 1, lastPulledAt: NOW - 3 * DAY }, b: { pulls: 9, lastPulledAt: NOW - DAY }, c: { pulls: 1, lastPulledAt: NOW - 5 * DAY } };
    const result = run({ keepLastPulled: 2 }, [tag('a', 9), tag('b', 9), tag('c', 9), tag('d', 1)], pulls);
    assert.deepEqual(deleted(result), ['c', 'd']);
    assert.match(result.tags.find((t) => t.tag === 'd')!.reason, /never pulled/);
  });

  it('combines rules with OR and names every rule that kept a tag', () => {
    const result = run({ keepLastPushed: 1, keepTags: ['v*'] }, [tag('v1', 10), tag('v2', 0), tag('x', 5)]);
    assert.deepEqual(deleted(result), ['x']);
    const v2 = result.tags.find((t) => t.tag === 'v2')!;
    assert.deepEqual(v2.keptBy, ['keepLastPushed', 'keepTags']);
  });

  it('keeps latest and immutable tags unless the policy says otherwise', () => {
    const immutable: IsImmutable = (_repo, t) => (t === 'v1' ? 'releases' : undefined);
    const tags = [tag('latest', 50), tag('v1', 50), tag('x', 50), tag('y', 0)];
    const kept = run({ keepLastPushed: 1 }, tags, {}, immutable);
    assert.deepEqual(deleted(kept), ['x']);
    assert.match(kept.tags.find((t) => t.tag === 'v1')!.reason, /immutable \(rule "releases"/);
    const open = run({ keepLastPushed: 1, deleteLatest: true, deleteImmutable: true }, tags, {}, immutable);
    assert.deepEqual(deleted(open), ['latest', 'v1', 'x']);
  });

  it('judges only tags in the policy scope', () => {
    const result = run({ tags: ['ci-*'], keepLastPushed: 1 }, [tag('ci-1', 3), tag('ci-2', 1), tag('prod', 99)]);
    assert.deepEqual(deleted(result), ['ci-1']);
    assert.match(result.tags.find((t) => t.tag === 'prod')!.reason, /outside the policy's tags/);
  });

  it('judges tags, not digests: a deleted tag may share its digest with a kept one', () => {
    const shared = 'sha256:shared';
    const result = run({ keepTags: ['keep'] }, [tag('keep', 9, shared), tag('drop', 9, shared)]);
    assert.deepEqual(deleted(result), ['drop']);
  });

  it('the guard refuses more than maxDeleteFraction (forcible) and all tags (never)', () => {
    const tags = [tag('a', 9), tag('b', 8), tag('c', 7), tag('d', 0)];
    const over = run({ keepLastPushed: 1, maxDeleteFraction: 0.5 }, tags);
    assert.equal(over.guard.verdict, 'refused');
    assert.ok(over.guard.verdict === 'refused' && over.guard.forcible && over.guard.rule === 'fraction');
    const within = run({ keepLastPushed: 2, maxDeleteFraction: 0.5 }, tags);
    assert.equal(within.guard.verdict, 'ok');
    const all = run({ keepTags: ['none'] }, tags);
    assert.ok(all.guard.verdict === 'refused' && !all.guard.forcible && all.guard.rule === 'all');
  });
});

describe('retention policies', () => {
  it('the first policy matching a repository wins', () => {
    const policies = retentionPoliciesSchema.parse([
      { name: 'team', repositories: ['team/**'], keepLastPushed: 5 },
      { name: 'all', repositories: ['**'], keepLastPushed: 50 },
    ]);
    assert.equal(policyFor(policies, 'team/app')?.name, 'team');
    assert.equal(policyFor(policies, 'other')?.name, 'all');
  });

  it('rejects a policy with no keep rule, a bad duration, a bad regex, a groupBy without a group', () => {
    const problems = (input: unknown) => {
      const r = retentionPolicySchema.safeParse(input);
      assert.equal(r.success, false);
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    };
    assert.match(problems({ name: 'p', repositories: ['**'] }), /no keep rule/);
    assert.match(problems({ name: 'p', repositories: ['**'], keepPushedWithin: '30 days' }), /keepPushedWithin: must be a whole number and a unit/);
    assert.match(problems({ name: 'p', repositories: ['**'], keepTags: ['/(/'] }), /keepTags.0: not a valid regular expression/);
    assert.match(problems({ name: 'p', repositories: ['**'], keepLastPushed: 1, groupBy: '^main-' }), /groupBy: needs a capture group/);
    assert.match(problems({ name: 'p', repositories: ['**'], keepLastPushed: 1, keepEverything: true }), /keepEverything/);
  });

  it('a bad policy in the configuration is named by its key', () => {
    assert.throws(
      () => parseConfig({ retention: { policies: [{ name: 'p', repositories: ['**'], keepPushedWithin: '30 days' }] } }),
      (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /^retention\.policies\.0\.keepPushedWithin: must be a whole number/.test(p)),
    );
    assert.equal(parseConfig({}).retention.enabled, false);
  });
});
