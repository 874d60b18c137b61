// What every MetadataStore's pull statistics (store.pulls, pull-types.ts) must do; run by
// test/metadata/pulls.test.ts on the embedded store, Redis and Redis Cluster. Times are explicit `now`
// values around the wall clock: Redis expires daily keys by real time, so the days must be real ones.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { DAY_MS, dayOf, type PullBatch, type PullBatchEntry, type PullMetadata } from '../../storage-drivers/metadata/pull-types.js';
import type { ManifestRecord, MetadataStore } from '../../storage-drivers/metadata/types.js';
import { digestOf, eachStore, type MetadataStoreFixture } from './metadata-store.contract.js';

function manifest(name: string): ManifestRecord {
  return { digest: digestOf(name), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 300, references: [], createdAt: 1000 };
}

type Counts = Record<string, [count: number, last: number]>;

function entry(repo: string, day: number, byTag: Counts, byDigest: Counts = {}): PullBatchEntry {
  return {
    repo,
    day,
    byTag: Object.entries(byTag).map(([tag, [count, last]]) => ({ tag, count, last })),
    byDigest: Object.entries(byDigest).map(([digest, [count, last]]) => ({ digest, count, last })),
  };
}

export function runMetadataPullsContract(name: string, setup: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore pulls contract: ${name}`, () => {
    let store: MetadataStore;
    let pulls: PullMetadata;
    const now = Date.now();
    const today = dayOf(now);
    const batch = (entries: PullBatchEntry[], extra: Partial<PullBatch> = {}): PullBatch => ({ id: randomUUID(), entries, keepDays: 90, now, ...extra });

    eachStore(setup, (s) => {
      store = s;
      pulls = s.pulls;
    });

    it('counts pulls by tag per tag and per repository, with the latest time and today in the series', async () => {
      await store.putManifest('team/app', manifest('a'), ['v1', 'v2']);
      await pulls.recordPulls(batch([entry('team/app', today, { v1: [3, now - 10], v2: [1, now - 5] })]));
      await pulls.recordPulls(batch([entry('team/app', today, { v1: [2, now - 20] })]));

      const repo = await pulls.repositoryPulls('team/app', { days: 3, now });
      assert.equal(repo.count, 6);
      assert.equal(repo.last, now - 5);
      assert.deepEqual(repo.daily, [
        { day: today - 2, count: 0 },
        { day: today - 1, count: 0 },
        { day: today, count: 6 },
      ]);
      const tags = await pulls.tagPulls('team/app', ['v1', 'v2', 'never']);
      assert.deepEqual(Object.fromEntries(tags), { v1: { count: 5, last: now - 10 }, v2: { count: 1, last: now - 5 } });
      const v1 = await pulls.tagSeries('team/app', 'v1', { days: 1, now });
      assert.deepEqual(v1, { count: 5, last: now - 10, daily: [{ day: today, count: 5 }] });
    });

    it('credits a pull by digest to every tag pointing at it at flush time, and the repository once', async () => {
      const a = manifest('a');
      const b = manifest('b');
      await store.putManifest('team/app', a, ['v1', 'latest']);
      await store.putManifest('team/app', b, ['v2']);
      await pulls.recordPulls(batch([entry('team/app', today, {}, { [a.digest]: [4, now - 1] })]));
      assert.deepEqual(Object.fromEntries(await pulls.tagPulls('team/app', ['v1', 'latest', 'v2'])), {
        v1: { count: 4, last: now - 1 },
        latest: { count: 4, last: now - 1 },
      });
      assert.equal((await pulls.repositoryPulls('team/app', { days: 1, now })).count, 4);

      // `latest` moves to b: later pulls of a's digest are v1's only, pulls of b's are v2's and latest's.
      await store.putManifest('team/app', b, ['latest']);
      await pulls.recordPulls(batch([entry('team/app', today, { v2: [1, now] }, { [a.digest]: [1, now], [b.digest]: [2, now] })]));
      assert.deepEqual(Object.fromEntries(await pulls.tagPulls('team/app', ['v1', 'latest', 'v2'])), {
        v1: { count: 5, last: now },
        latest: { count: 6, last: now },
        v2: { count: 3, last: now },
      });
      const repo = await pulls.repositoryPulls('team/app', { days: 1, now });
      assert.equal(repo.count, 8);
      assert.deepEqual(repo.daily, [{ day: today, count: 8 }]);
      assert.deepEqual((await pulls.tagSeries('team/app', 'latest', { days: 1, now })).daily, [{ day: today, count: 6 }]);
    });

    it('counts a pull by a digest no tag points at for the repository only', async () => {
      const a = manifest('untagged');
      await store.putManifest('team/app', a, []);
      await pulls.recordPulls(batch([entry('team/app', today, {}, { [a.digest]: [2, now] })]));
      assert.equal((await pulls.repositoryPulls('team/app', { days: 1, now })).count, 2);
      assert.equal((await pulls.tagPulls('team/app', ['v1'])).size, 0);
    });

    it('applies a batch recorded again under the same id once (a retried flush), and a new id again', async () => {
      await store.putManifest('team/app', manifest('a'), ['v1']);
      const once = batch([entry('team/app', today, { v1: [2, now] }), entry('other/app', today, { x: [1, now] })]);
      await pulls.recordPulls(once);
      await pulls.recordPulls(once);
      assert.equal((await pulls.repositoryPulls('team/app', { days: 1, now })).count, 2);
      assert.equal((await pulls.repositoryPulls('other/app', { days: 1, now })).count, 1);
      await pulls.recordPulls({ ...once, id: randomUUID() });
      assert.equal((await pulls.repositoryPulls('team/app', { days: 1, now })).count, 4);
    });

    it('keeps repositories apart and answers zeros for one never pulled', async () => {
      await pulls.recordPulls(batch([entry('a/app', today, { v1: [1, now] }), entry('a/app/sub', today, { v1: [7, now] })]));
      assert.equal((await pulls.repositoryPulls('a/app', { days: 1, now })).count, 1);
      assert.equal((await pulls.repositoryPulls('a/app/sub', { days: 1, now })).count, 7);
      const none = await pulls.repositoryPulls('nobody/here', { days: 2, now });
      assert.deepEqual(none, {
        count: 0,
        daily: [
          { day: today - 1, count: 0 },
          { day: today, count: 0 },
        ],
      });
      assert.deepEqual(await pulls.tagSeries('nobody/here', 'v1', { days: 1, now }), { count: 0, daily: [{ day: today, count: 0 }] });
    });

    it('buckets by the entry’s UTC day and keeps daily counts keepDays days, totals for ever', async () => {
      await pulls.recordPulls(
        batch(
          [
            entry('team/app', today - 1, { v1: [2, (today - 1) * DAY_MS + 5] }),
            entry('team/app', today - 2, { v1: [1, (today - 2) * DAY_MS + 5] }),
            entry('team/app', today, { v1: [1, now] }),
          ],
          { keepDays: 2 },
        ),
      );
      const repo = await pulls.repositoryPulls('team/app', { days: 4, now });
      assert.equal(repo.count, 4);
      assert.deepEqual(
        repo.daily.map((d) => d.count),
        [0, 0, 2, 1],
      );
      assert.deepEqual(
        (await pulls.tagSeries('team/app', 'v1', { days: 3, now })).daily.map((d) => d.count),
        [0, 2, 1],
      );
      assert.equal((await pulls.tagSeries('team/app', 'v1', { days: 3, now })).count, 4);
    });

    it('reads the totals of 30,000 tags in one call', async () => {
      const tags = Array.from({ length: 30_000 }, (_, i) => `build-${String(i).padStart(5, '0')}`);
      const pulled = tags.filter((_, i) => i % 3 === 0);
      await pulls.recordPulls(batch([entry('ci/app', today, Object.fromEntries(pulled.map((t, i) => [t, [1 + (i % 5), now - i]])))]));
      const started = performance.now();
      const found = await pulls.tagPulls('ci/app', tags);
      const ms = performance.now() - started;
      assert.equal(found.size, pulled.length);
      assert.deepEqual(found.get('build-00003'), { count: 2, last: now - 1 });
      assert.equal(found.get('build-00001'), undefined);
      // Generous: a regression to one round trip per tag costs seconds on Redis.
      assert.ok(ms < 3000, `30,000 tags read in ${ms.toFixed(0)} ms`);
    });
  });
}
