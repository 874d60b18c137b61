// Retention runs against a real metadata store (embedded or Redis) under a registry app: each rule
// acting, the shared-digest case, the untagged rule, the guard, resuming, two runners at once and a
// run racing a push. The clock of the judgement is injected; push times are set through putManifest.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { NOTHING_IMMUTABLE, type IsImmutable, type PullInfo, type PullsOf } from '../../server/registry/retention/evaluate.js';
import { retentionPoliciesSchema, type RetentionPolicyInput } from '../../server/registry/retention/policy.js';
import { Retention, type RetentionEvent, type RunOptions } from '../../server/registry/retention/retention.js';
import type { ManifestRecord } from '../../storage-drivers/metadata/types.js';
import { digestOf } from '../contract/metadata-store.contract.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry, type TestRegistryOptions } from '../helpers/registry.js';

const DAY = 86_400_000;

function record(name: string, createdAt: number): ManifestRecord {
  return { digest: digestOf(name), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, references: [], createdAt };
}

/** A gate a test opens when it is ready: what waits on it resumes then. */
function gate(): { wait: Promise<void>; open: () => void; reached: Promise<void>; arrive: () => void } {
  let open!: () => void;
  let arrive!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  return { wait, open, reached, arrive };
}

export function runRetentionSuite(name: string, options: () => Promise<TestRegistryOptions>): void {
  describe(`retention on ${name}`, () => {
    let reg: TestRegistry;
    const clock = { now: Date.now() };
    before(async () => {
      reg = await startTestRegistry({
        ...(await options()),
        config: {
          gc: { enabled: false, delaySeconds: 0, quarantineSeconds: 0, deleteUntagged: true, untaggedAgeSeconds: 0 },
          immutableTags: { rules: [{ repositories: 'wired-*', tags: ['v*'] }] },
        },
        deps: { now: () => clock.now },
      });
    });
    after(async () => reg?.close());

    function retention(extra: { pullsOf?: PullsOf; isImmutable?: IsImmutable; holder?: string } = {}): Retention {
      return new Retention({
        metadata: reg.storage.metadata,
        // The app's own GC usage: what retention queues is what the app's GC passes then judge.
        usage: reg.app.retentionRunner.retention.deps.usage,
        pullsOf: extra.pullsOf ?? (async () => new Map()),
        isImmutable: extra.isImmutable ?? NOTHING_IMMUTABLE,
        now: () => clock.now,
        holder: extra.holder ?? randomUUID(),
        leaseMs: 60_000,
      });
    }

    async function run(r: Retention, policies: RetentionPolicyInput[], extra: Partial<RunOptions> = {}) {
      const events: RetentionEvent[] = [];
      const summary = await r.run({
        policies: retentionPoliciesSchema.parse(policies),
        dryRun: false,
        force: false,
        batch: 100,
        onEvent: (e) => events.push(e),
        ...extra,
      });
      return { summary, events };
    }

    /** A fresh repository name and `tags` pushed in order, `ageDays` before the clock. */
    async function seed(tags: [tag: string, ageDays: number, digestName?: string][]): Promise<string> {
      const repo = `ret-${randomUUID().slice(0, 8)}`;
      for (const [tag, age, digestName] of tags)
        await reg.storage.metadata.putManifest(repo, record(digestName ?? `${repo}-${tag}`, clock.now - age * DAY), [tag]);
      return repo;
    }

    async function tagsOf(repo: string): Promise<string[]> {
      return reg.storage.metadata.listTags(repo, {});
    }

    it('keeps the last N pushed per group and tags matching keepTags, deletes the rest with an event each', async () => {
      const repo = await seed([
        ['main-0000001', 5],
        ['main-0000002', 4],
        ['main-0000003', 3],
        ['dev-0000004', 2],
        ['dev-0000005', 1],
        ['v1.0.0', 9],
      ]);
      const { summary, events } = await run(retention(), [
        { name: 'ci', repositories: [repo], keepLastPushed: 1, groupBy: '^(?<branch>.+)-[0-9a-f]{7}$', keepTags: ['v*'], maxDeleteFraction: 0.9 },
      ]);
      assert.deepEqual(await tagsOf(repo), ['dev-0000005', 'main-0000003', 'v1.0.0']);
      assert.equal(summary.tagsDeleted, 3);
      const deleted = events.filter((e) => e.kind === 'tag_deleted');
      assert.deepEqual(deleted.map((e) => e.tag).sort(), ['dev-0000004', 'main-0000001', 'main-0000002']);
      for (const e of deleted) assert.match(e.reason, /no keep rule keeps it/);
    });

    it('keeps by push age and by pulls (fed through pullsOf)', async () => {
      const repo = await seed([
        ['fresh', 1],
        ['pulled', 40],
        ['old', 40],
        ['older', 50],
      ]);
      const pulls = new Map<string, PullInfo>([['pulled', { pulls: 4, lastPulledAt: clock.now - 3 * DAY }]]);
      await run(retention({ pullsOf: async () => pulls }), [{ name: 'age', repositories: [repo], keepPushedWithin: '30d', keepPulledWithin: '7d' }]);
      assert.deepEqual(await tagsOf(repo), ['fresh', 'pulled']);
    });

    it('the app judges by the pulls it counted (a pull by digest credits its tag) and by immutableTags.rules', async () => {
      const repo = `wired-${randomUUID().slice(0, 8)}`;
      const client = new RegistryClient(reg.url);
      const pulled = await client.pushImage(repo, 'a');
      for (const tag of ['b', 'v1', 'c']) await client.pushImage(repo, tag);
      assert.equal((await client.fetch(`/v2/${repo}/manifests/b`, { method: 'HEAD' })).status, 200, 'a HEAD is not a pull');
      assert.equal((await client.fetch(`/v2/${repo}/manifests/${pulled.manifest.digest}`)).status, 200);
      await reg.app.pullCounter?.flush();
      const { events } = await run(reg.app.retentionRunner.retention, [{ name: 'pulled', repositories: [repo], keepLastPulled: 1, maxDeleteFraction: 1 }]);
      assert.deepEqual(await tagsOf(repo), ['a', 'v1']);
      const deleted = events.filter((e) => e.kind === 'tag_deleted').map((e) => e.tag);
      assert.deepEqual(deleted.sort(), ['b', 'c']);
    });

    it('keeps latest and immutable tags unless the policy says otherwise', async () => {
      const repo = await seed([
        ['latest', 90],
        ['v1', 90],
        ['x', 90],
        ['y', 90],
        ['z', 0],
      ]);
      const immutable: IsImmutable = (r, tag) => (r === repo && tag === 'v1' ? 'releases' : undefined);
      await run(retention({ isImmutable: immutable }), [{ name: 'p', repositories: [repo], keepLastPushed: 1 }]);
      assert.deepEqual(await tagsOf(repo), ['latest', 'v1', 'z']);
      await run(retention({ isImmutable: immutable }), [{ name: 'p', repositories: [repo], keepLastPushed: 1, deleteLatest: true, maxDeleteFraction: 0.7 }]);
      assert.deepEqual(await tagsOf(repo), ['v1', 'z']);
    });

    it('deletes a tag sharing its digest with a kept tag, and the image stays whole (goharbor/harbor#8717)', async () => {
      const repo = `ret-shared-${randomUUID().slice(0, 8)}`;
      const c = new RegistryClient(reg.url);
      const image = await c.pushImage(repo, 'release-1');
      await c.pushManifest(repo, 'build-77', image.manifest);
      await c.pushImage(repo, 'build-78');
      const { summary } = await run(retention(), [{ name: 'p', repositories: [repo], keepTags: ['release-*', 'build-78'] }]);
      assert.equal(summary.tagsDeleted, 1);
      assert.deepEqual(await tagsOf(repo), ['build-78', 'release-1']);
      // GC then runs over what retention queued: the digest keeps its kept tag, so nothing of it goes.
      await reg.app.gc.pass();
      await reg.app.gc.pass();
      assert.equal((await c.fetch(`/v2/${repo}/manifests/release-1`)).status, 200);
      assert.equal((await c.fetch(`/v2/${repo}/manifests/${image.manifest.digest}`)).status, 200);
      for (const b of [image.config, ...image.layers]) assert.equal((await c.fetch(`/v2/${repo}/blobs/${b.digest}`)).status, 200);
    });

    it('deletes untagged manifests after deleteAfter, not before, and never a tagged one', async () => {
      const repo = await seed([
        ['a', 30],
        ['b', 30],
        ['c', 30],
        ['keep', 0],
      ]);
      const metadata = reg.storage.metadata;
      for (const t of ['a', 'b', 'c']) await metadata.deleteTag(repo, t);
      // "b" is tagged again: it must stay.
      await metadata.putManifest(repo, record(`${repo}-b`, clock.now - 30 * DAY), ['b-again']);
      const policy = { name: 'u', repositories: [repo], keepTags: ['*'], untagged: { deleteAfter: '7d' } };
      const early = await run(retention(), [policy]);
      assert.equal(early.summary.manifestsDeleted, 0);
      const saved = clock.now;
      clock.now = Date.now() + 8 * DAY;
      try {
        const late = await run(retention(), [policy]);
        assert.equal(late.summary.manifestsDeleted, 2);
        assert.deepEqual(
          late.events
            .filter((e) => e.kind === 'manifest_deleted')
            .map((e) => e.digest)
            .sort(),
          [digestOf(`${repo}-a`), digestOf(`${repo}-c`)].sort(),
        );
      } finally {
        clock.now = saved;
      }
      assert.equal(await metadata.getManifest(repo, digestOf(`${repo}-a`)), undefined);
      assert.ok(await metadata.getManifest(repo, digestOf(`${repo}-b`)));
    });

    it('the guard refuses a run deleting too much (nothing deleted), a forced run goes ahead, every tag is never deleted', async () => {
      const repo = await seed([
        ['a', 9],
        ['b', 8],
        ['c', 7],
        ['d', 0],
      ]);
      const policies = [{ name: 'tight', repositories: [repo], keepLastPushed: 1 }];
      const refused = await run(retention(), policies);
      assert.equal(refused.summary.refused, 1);
      assert.deepEqual(await tagsOf(repo), ['a', 'b', 'c', 'd']);
      const refusal = refused.events.find((e) => e.kind === 'refused');
      assert.ok(refusal?.kind === 'refused' && refusal.rule === 'fraction' && refusal.deleted === 3 && refusal.total === 4, JSON.stringify(refusal));

      const all = await run(retention(), [{ name: 'none', repositories: [repo], keepTags: ['nothing'] }], { force: true });
      assert.equal(all.summary.refused, 1);
      assert.deepEqual(await tagsOf(repo), ['a', 'b', 'c', 'd']);

      const forced = await run(retention(), policies, { force: true });
      assert.equal(forced.summary.tagsDeleted, 3);
      assert.deepEqual(await tagsOf(repo), ['d']);
    });

    it('is bounded per run and resumes after a stopped run, in another runner', async () => {
      // Its own store view: the walk covers every repository, so the policies name only these.
      const prefix = `ret-walk-${randomUUID().slice(0, 6)}`;
      const repos = [`${prefix}/a`, `${prefix}/b`, `${prefix}/c`];
      for (const repo of repos) {
        for (const [i, tag] of ['t1', 't2', 't3'].entries())
          await reg.storage.metadata.putManifest(repo, record(`${repo}-${tag}`, clock.now - (10 - i) * DAY), [tag]);
      }
      const policies = [{ name: 'walk', repositories: [`${prefix}/**`], keepLastPushed: 2 }];
      await reg.storage.metadata.retention.saveState('{}');
      const first = await run(retention(), policies, { batch: 1 });
      assert.equal(first.summary.repositories, 1);
      assert.equal(first.summary.cursor, repos[0]);
      assert.deepEqual(await tagsOf(repos[1]!), ['t1', 't2', 't3']);

      const stop = new AbortController();
      const second = await run(retention(), policies, {
        signal: stop.signal,
        onEvent: (e) => {
          if (e.kind === 'repository') stop.abort();
        },
      });
      assert.equal(second.summary.stopped, true);
      assert.equal(second.summary.cursor, repos[1]);
      assert.deepEqual(await tagsOf(repos[1]!), ['t2', 't3']);
      assert.deepEqual(await tagsOf(repos[2]!), ['t1', 't2', 't3']);

      const third = await run(retention(), policies);
      assert.equal(third.summary.cycleComplete, true);
      assert.deepEqual(await tagsOf(repos[2]!), ['t2', 't3']);
      const state = await retention().loadState();
      assert.equal(state.cursor, undefined);
      assert.equal(state.lastRun?.cycleComplete, true);
    });

    it('two runners at once never both handle one repository', async () => {
      const repo = await seed([
        ['a', 9],
        ['b', 8],
        ['c', 0],
      ]);
      const policies = [{ name: 'p', repositories: [repo], keepLastPulled: 1, keepLastPushed: 2 }];
      const g = gate();
      const slow = retention({
        pullsOf: async () => {
          g.arrive();
          await g.wait;
          return new Map();
        },
      });
      const first = run(slow, policies, { repository: repo });
      await g.reached;
      const second = await run(retention(), policies, { repository: repo });
      assert.equal(second.summary.busy, 1);
      assert.equal(second.summary.tagsDeleted, 0);
      g.open();
      const done = await first;
      assert.equal(done.summary.tagsDeleted, 1);
      assert.deepEqual(await tagsOf(repo), ['b', 'c']);
    });

    it('a tag re-pushed to a new digest while the run judged it survives', async () => {
      const repo = await seed([
        ['old', 9],
        ['mid', 8],
        ['new', 0],
      ]);
      const g = gate();
      const racing = retention({
        pullsOf: async () => {
          g.arrive();
          await g.wait;
          return new Map();
        },
      });
      const running = run(racing, [{ name: 'p', repositories: [repo], keepLastPushed: 1, keepLastPulled: 1, maxDeleteFraction: 0.9 }], { repository: repo });
      await g.reached;
      await reg.storage.metadata.putManifest(repo, record(`${repo}-old-again`, clock.now), ['old']);
      g.open();
      const { summary } = await running;
      assert.equal(summary.tagsDeleted, 1);
      assert.equal(summary.tagsChanged, 1);
      assert.deepEqual(await tagsOf(repo), ['new', 'old']);
      assert.equal(await reg.storage.metadata.resolveTag(repo, 'old'), digestOf(`${repo}-old-again`));
    });
  });
}
