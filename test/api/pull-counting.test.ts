// Pull statistics through HTTP, on the embedded store and on Redis: what counts as a pull, crediting a
// pull by digest to its tags, several processes on one Redis, a store that fails a flush, and the
// metrics. Flushes are triggered explicitly (stats.flushSeconds is far beyond a test's length).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { BerthConfigInput } from '../../server/config.js';
import { Metrics } from '../../server/operations/metrics.js';
import type { PullCounterEvent } from '../../server/registry/stats/pull-counter.js';
import type { RepositoryPullReport, TagPullReport } from '../../server/registry/stats/pull-report.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import { usePair } from '../helpers/matrix.js';
import { OCI_MANIFEST, RegistryClient } from '../helpers/oci.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { startTestRegistry, type TestRegistry, type TestRegistryOptions } from '../helpers/registry.js';

const CONFIG: BerthConfigInput = { gc: { enabled: false }, stats: { flushSeconds: 3600 } };

async function flush(reg: TestRegistry) {
  const counter = reg.app.pullCounter;
  assert.ok(counter, 'stats are enabled');
  return counter.flush();
}

async function report(reg: TestRegistry, query: string): Promise<RepositoryPullReport> {
  const res = await fetch(`${reg.url}/api/v1/pulls?${query}`);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as RepositoryPullReport;
}

async function tagReport(reg: TestRegistry, repo: string, tag: string): Promise<TagPullReport> {
  const res = await fetch(`${reg.url}/api/v1/pulls?repository=${repo}&tag=${tag}&days=1`);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as TagPullReport;
}

function tagCounts(r: RepositoryPullReport): Record<string, number> {
  return Object.fromEntries(r.tags.map((t) => [t.tag, t.count]));
}

const accept = { accept: OCI_MANIFEST };

for (const metadata of ['embedded', 'redis'] as const) {
  describe(`pull counting over HTTP: ${metadata} metadata`, () => {
    const env = usePair('memory', metadata);
    let reg: TestRegistry;
    let client: RegistryClient;
    const events: PullCounterEvent[] = [];
    const metrics = new Metrics({ processMetrics: false });
    before(async () => {
      const options = await env.options();
      reg = await startTestRegistry({
        ...options,
        config: CONFIG,
        deps: {
          onPulls: (event) => {
            events.push(event);
            metrics.recordPullCounter(event);
          },
        },
      });
      client = new RegistryClient(reg.url);
    });
    after(async () => reg?.close());

    it('credits a HEAD-by-tag then GET-by-digest pull (containerd, Kubernetes) to the tag; a HEAD alone counts nothing', async () => {
      const { manifest } = await client.pushImage('team/app', 'v1');
      await client.pushManifest('team/app', 'stable', manifest);
      for (let i = 0; i < 3; i++) {
        const head = await client.fetch('/v2/team/app/manifests/v1', { method: 'HEAD', headers: accept });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get('docker-content-digest'), manifest.digest);
      }
      await flush(reg);
      assert.equal((await report(reg, 'repository=team/app')).count, 0);

      const get = await client.fetch(`/v2/team/app/manifests/${manifest.digest}`, { headers: accept });
      assert.equal(get.status, 200);
      await get.arrayBuffer();
      assert.equal((await report(reg, 'repository=team/app')).count, 0, 'nothing is written before a flush');
      await flush(reg);
      const r = await report(reg, 'repository=team/app&days=2');
      assert.equal(r.count, 1);
      assert.deepEqual(tagCounts(r), { stable: 1, v1: 1 });
      assert.equal(r.daily.length, 2);
      assert.equal(r.daily[1]?.count, 1);
      assert.equal(r.daily[1]?.date, new Date().toISOString().slice(0, 10));
      assert.ok(r.lastPulled !== null && Date.now() - Date.parse(r.lastPulled) < 60_000);
    });

    it('counts a GET by tag for that tag, and a conditional GET answered 304 as a pull', async () => {
      const { manifest } = await client.pushImage('team/cond', 'v1');
      await client.pushManifest('team/cond', 'v2', manifest);
      const plain = await client.fetch('/v2/team/cond/manifests/v1', { headers: accept });
      assert.equal(plain.status, 200);
      await plain.arrayBuffer();
      const cached = await client.fetch('/v2/team/cond/manifests/v1', { headers: { ...accept, 'if-none-match': `"${manifest.digest}"` } });
      assert.equal(cached.status, 304);
      const missing = await client.fetch('/v2/team/cond/manifests/nope', { headers: accept });
      assert.equal(missing.status, 404);
      await flush(reg);
      const r = await report(reg, 'repository=team/cond');
      assert.equal(r.count, 2);
      assert.deepEqual(tagCounts(r), { v1: 2, v2: 0 });
      const v1 = await tagReport(reg, 'team/cond', 'v1');
      assert.equal(v1.count, 2);
      assert.deepEqual(
        v1.daily.map((d) => d.count),
        [2],
      );
    });

    it('reports the counts in the metrics by kind, without repository labels', async () => {
      const text = await metrics.exposition();
      assert.match(text, /berth_pull_stats_counted_total\{kind="digest"\} 1\b/);
      assert.match(text, /berth_pull_stats_counted_total\{kind="tag"\} 2\b/);
      assert.match(text, /berth_pull_stats_flushes_total\{result="ok"\} [1-9]/);
      assert.match(text, /berth_pull_stats_pending_entries 0\b/);
      assert.doesNotMatch(text, /berth_pull_stats_[a-z_]+\{[^}]*repository=/);
      assert.ok(events.every((e) => e.kind !== 'dropped'));
    });
  });
}

describe('pull counting: several processes on one Redis, and Redis failing a flush', () => {
  let redis: RedisServer;
  before(async () => {
    // Kept on disk: the tags must survive the crash the failure tests cause.
    redis = await startRedisServer({ appendonly: true });
  });
  after(async () => redis?.stop());

  function sharedRedis(prefix: string): NonNullable<TestRegistryOptions['metadata']> {
    return async () => {
      const store = new RedisStore(redisConfigSchema.parse({ url: redis.url, keyPrefix: prefix }));
      assert.equal(await store.waitUntilReady(5000), true);
      return store;
    };
  }

  it('adds up the pulls two app instances counted, including the last flush on close', async () => {
    const metadata = sharedRedis(`shared-${randomBytes(4).toString('hex')}:`);
    const a = await startTestRegistry({ config: CONFIG, metadata });
    const b = await startTestRegistry({ config: CONFIG, metadata });
    try {
      const { manifest } = await new RegistryClient(a.url).pushImage('team/multi', 'v1');
      for (const [reg, times] of [
        [a, 3],
        [b, 2],
      ] as const) {
        for (let i = 0; i < times; i++) {
          const res = await fetch(`${reg.url}/v2/team/multi/manifests/${i % 2 === 0 ? 'v1' : manifest.digest}`, { headers: accept });
          assert.equal(res.status, 200);
          await res.arrayBuffer();
        }
      }
      await flush(b);
      assert.equal((await report(b, 'repository=team/multi')).count, 2);
      await a.app.close(); // its onClose flushes what it counted
      const r = await report(b, 'repository=team/multi');
      assert.equal(r.count, 5);
      assert.deepEqual(tagCounts(r), { v1: 5 });
    } finally {
      await Promise.allSettled([a.close(), b.close()]);
    }
  });

  it('never fails a pull when the store refuses the flush, and retries the batch (counted once) once Redis is back', async () => {
    const events: PullCounterEvent[] = [];
    const reg = await startTestRegistry({
      config: CONFIG,
      metadata: sharedRedis(`fail-${randomBytes(4).toString('hex')}:`),
      deps: { onPulls: (event) => events.push(event) },
    });
    try {
      await new RegistryClient(reg.url).pushImage('team/down', 'v1');
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${reg.url}/v2/team/down/manifests/v1`, { headers: accept });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      await redis.kill();
      const failed = await flush(reg);
      assert.deepEqual(failed, { recorded: 0, failed: 1, pending: 1 });
      assert.ok(events.some((e) => e.kind === 'flush' && e.result === 'failed'));

      await redis.restart();
      assert.ok(reg.metadata instanceof RedisStore);
      assert.equal(await reg.metadata.waitUntilReady(5000), true);
      const res = await fetch(`${reg.url}/v2/team/down/manifests/v1`, { headers: accept });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      const retried = await flush(reg);
      assert.deepEqual(retried, { recorded: 2, failed: 0, pending: 0 });
      assert.equal((await report(reg, 'repository=team/down')).count, 5);
      assert.ok(events.every((e) => e.kind !== 'dropped'));
    } finally {
      await reg.close();
    }
  });

  it('drops a batch after stats.flushAttempts refusals and counts what it dropped', async () => {
    const events: PullCounterEvent[] = [];
    const reg = await startTestRegistry({
      config: { ...CONFIG, stats: { flushSeconds: 3600, flushAttempts: 2 } },
      metadata: sharedRedis(`drop-${randomBytes(4).toString('hex')}:`),
      deps: { onPulls: (event) => events.push(event) },
    });
    try {
      await new RegistryClient(reg.url).pushImage('team/lost', 'v1');
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${reg.url}/v2/team/lost/manifests/v1`, { headers: accept });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      await redis.kill();
      assert.deepEqual(await flush(reg), { recorded: 0, failed: 1, pending: 1 });
      assert.deepEqual(await flush(reg), { recorded: 0, failed: 1, pending: 0 });
      assert.deepEqual(
        events.filter((e) => e.kind === 'dropped'),
        [{ kind: 'dropped', reason: 'retries', pulls: 3, pending: 0 }],
      );
    } finally {
      await redis.restart();
      await reg.close();
    }
  });
});

describe('pull counting: memory bound and stats.enabled', () => {
  it('holds at most stats.maxPending distinct counts and counts the pulls beyond them as dropped', async () => {
    const events: PullCounterEvent[] = [];
    const reg = await startTestRegistry({
      config: { ...CONFIG, stats: { flushSeconds: 3600, maxPending: 2 } },
      deps: { onPulls: (event) => events.push(event) },
    });
    try {
      const client = new RegistryClient(reg.url);
      const { manifest } = await client.pushImage('team/cap', 'a');
      for (const tag of ['b', 'c']) await client.pushManifest('team/cap', tag, manifest);
      for (const ref of ['a', 'b', 'c', 'a', 'b']) {
        const res = await client.fetch(`/v2/team/cap/manifests/${ref}`, { headers: accept });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      assert.deepEqual(
        events.filter((e) => e.kind === 'dropped'),
        [{ kind: 'dropped', reason: 'overflow', pulls: 1, pending: 2 }],
      );
      await flush(reg);
      assert.deepEqual(tagCounts(await report(reg, 'repository=team/cap')), { a: 2, b: 2, c: 0 });
    } finally {
      await reg.close();
    }
  });

  it('counts nothing with stats.enabled false', async () => {
    const reg = await startTestRegistry({ config: { ...CONFIG, stats: { enabled: false } } });
    try {
      await new RegistryClient(reg.url).pushImage('team/off', 'v1');
      const res = await fetch(`${reg.url}/v2/team/off/manifests/v1`, { headers: accept });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.equal(reg.app.pullCounter, undefined);
      assert.equal((await report(reg, 'repository=team/off')).count, 0);
    } finally {
      await reg.close();
    }
  });
});
