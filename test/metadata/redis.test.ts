import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { after, before, describe, it } from 'node:test';
import { redisConfigSchema, type RedisConfigInput } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore, warnIfEphemeral } from '../../storage-drivers/metadata/redis.js';
import type { EventOrigin, LoggedRecord } from '../../storage-drivers/metadata/event-types.js';
import { MetadataUnavailableError, type ManifestRecord } from '../../storage-drivers/metadata/types.js';
import { runMetadataGcContract } from '../contract/metadata-gc.contract.js';
import { runMetadataRetentionContract } from '../contract/metadata-retention.contract.js';
import { runMetadataReplicationContract } from '../contract/metadata-replication.contract.js';
import { digestOf, runMetadataStoreContract } from '../contract/metadata-store.contract.js';
import { openRedisStore, redisStores } from '../helpers/metadata-stores.js';
import { startRedisCluster, startRedisSentinel, startRedisServer, type RedisCluster, type RedisServer } from '../helpers/redis-server.js';

function openStore(server: RedisServer, extra: Partial<RedisConfigInput> = {}, options: { eventPendingGraceMs?: number } = {}): Promise<RedisStore> {
  return openRedisStore({ url: server.url, ...extra }, 't', options);
}

/** Polls `probe` until it resolves, at most `boundMs`. */
async function eventually(probe: () => Promise<unknown>, boundMs: number): Promise<void> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    try {
      await probe();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

function manifest(name: string, extra: Partial<ManifestRecord> = {}): ManifestRecord {
  return { digest: digestOf(name), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, references: [], createdAt: 1, ...extra };
}

let shared: RedisServer;
before(async () => {
  shared = await startRedisServer();
});
after(async () => {
  await shared.stop();
});

const redisStore = () => redisStores({ url: shared.url }, 't');
runMetadataStoreContract('redis', redisStore);
runMetadataGcContract('redis', redisStore);
runMetadataRetentionContract('redis', redisStore);
runMetadataReplicationContract('redis', redisStore);

// The same suite on a real three-node Redis Cluster: every script and MULTI must stay within one slot.
let cluster: RedisCluster;
before(async () => {
  cluster = await startRedisCluster(3);
});
after(async () => {
  await cluster.stop();
});
const clusterStore = () => redisStores({ cluster: { nodes: cluster.urls } }, 'c');
runMetadataStoreContract('redis cluster', clusterStore);
runMetadataGcContract('redis cluster', clusterStore);
runMetadataRetentionContract('redis cluster', clusterStore);
runMetadataReplicationContract('redis cluster', clusterStore);

describe('redis store specifics', () => {
  it('keeps every key under the prefix, with a per-repository, per-digest or gc hash tag', async () => {
    const store = await openStore(shared, { keyPrefix: 'pfx-check:' });
    try {
      const [m, layer, blob] = [manifest('m', { subject: digestOf('s'), references: [digestOf('layer')] }), digestOf('layer'), digestOf('b')];
      await store.putManifest('lib/app', m, ['v1', 'v0']);
      await store.deleteTag('lib/app', 'v0');
      await store.linkBlob('lib/app', { digest: blob, size: 3 });
      await store.createUpload({ id: 'u1', repo: 'lib/app', offset: 0, revision: 0, createdAt: 1, updatedAt: 1 });
      assert.deepEqual(await store.gc.pinBlobs([blob], { id: 'p', until: 10, now: 1 }), []);
      await store.gc.touchBlobs([layer], 2);
      const claim = await store.gc.claimBlob(layer, 3, 3);
      assert.ok(claim.ok);
      assert.equal(await store.gc.quarantineBlob(layer, claim.version, [], 3), true);
      await store.gc.enqueue([{ kind: 'blob', digest: layer, due: 1 }]);
      await store.gc.markComplete('test');
      const keys = (await store.client.keys('*')).filter((k) => !k.startsWith('t')).sort();
      const expected = [
        'catalog',
        `{blob:${blob}}:pins`,
        `{blob:${blob}}:repos`,
        `{blob:${blob}}:touch`,
        `{blob:${layer}}:gc`,
        `{blob:${layer}}:repos`,
        `{blob:${layer}}:touch`,
        `{blob:${m.digest}}:repos`,
        '{gc}:complete',
        '{gc}:queue',
        '{gc}:tokens',
        '{repo:lib/app}:blobs',
        '{repo:lib/app}:exists',
        '{repo:lib/app}:manifests',
        '{repo:lib/app}:referrers',
        '{repo:lib/app}:refs',
        '{repo:lib/app}:tagmap',
        '{repo:lib/app}:tags',
        '{repo:lib/app}:tagsof',
        '{repo:lib/app}:tagtime',
        '{repo:lib/app}:untagged',
        '{uploads}:age',
        '{uploads}:s:u1',
      ];
      assert.deepEqual(keys, expected.map((k) => `pfx-check:${k}`).sort());
      assert.deepEqual(await store.getTaggedManifest('lib/app', 'v1'), m);
      assert.equal(await store.getTaggedManifest('lib/app', 'nope'), undefined);
    } finally {
      await store.client.del(...(await store.client.keys('pfx-check:*')));
      await store.close();
    }
  });

  it('refuses to quarantine or purge a digest under a running pin even when its version matches', async () => {
    // Through the API every pin also changes the version, so the pin checks of quarantineBlob and
    // beginPurge only matter when the callers' clocks disagree; plant a pin that left the version alone.
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const store = await openStore(shared, { keyPrefix: prefix });
    try {
      const d = digestOf('planted');
      const pins = `${prefix}{blob:${d}}:pins`;
      await store.client.hset(pins, 'crashed-pusher', '2000');
      assert.equal(await store.gc.quarantineBlob(d, '', [], 1000), false);
      assert.equal(await store.gc.quarantineBlob(d, '', [], 2000), true);
      assert.equal(await store.gc.beginPurge(d, 'tok', 5000, 2000, 1500), undefined);
      assert.deepEqual(await store.gc.status(d), { state: 'live' }); // revived, not left quarantined
      assert.equal(await store.gc.quarantineBlob(d, '', [], 2000), true);
      assert.deepEqual(await store.gc.beginPurge(d, 'tok', 5000, 2000, 2000), []);
    } finally {
      await store.close();
    }
  });

  it('lets one of several processes win an upload compare-and-set', async () => {
    const prefix = `race${randomUUID().slice(0, 8)}:`;
    const stores = await Promise.all([1, 2, 3].map(() => openStore(shared, { keyPrefix: prefix })));
    try {
      const base = { id: 'shared', repo: 'r', offset: 0, revision: 0, createdAt: 1, updatedAt: 1 };
      await stores[0]?.createUpload(base);
      const attempts = stores.flatMap((store, s) =>
        Array.from({ length: 10 }, (_, i) => store.updateUpload('shared', 0, { ...base, revision: 1, offset: s * 100 + i + 1 })),
      );
      const results = await Promise.all(attempts);
      assert.equal(results.filter(Boolean).length, 1);
      const stored = await stores[2]?.getUpload('shared');
      assert.equal(stored?.revision, 1);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it('lets one of several processes win a replication rule compare-and-set', async () => {
    const prefix = `race${randomUUID().slice(0, 8)}:`;
    const stores = await Promise.all([1, 2, 3].map(() => openStore(shared, { keyPrefix: prefix })));
    try {
      const attempts = stores.flatMap((store, s) => Array.from({ length: 10 }, (_, i) => store.replication.updateRuleState('mirror', 0, `${s}.${i}`)));
      const results = await Promise.all(attempts);
      assert.equal(results.filter(Boolean).length, 1);
      const winner = results.indexOf(true);
      assert.deepEqual(await stores[2]?.replication.getRuleState('mirror'), { revision: 1, state: `${Math.floor(winner / 10)}.${winner % 10}` });
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it("keeps a replication rule's keys under the prefix, in its own {repl:<rule>} slot", async () => {
    const store = await openStore(shared, { keyPrefix: 'repl-check:' });
    try {
      await store.replication.updateRuleState('hub/mirror', 0, '{}');
      await store.replication.putArtifact('hub/mirror', 'team/app:v1', '{}');
      await store.replication.updateRuleState('other', 0, '{}');
      const keys = (await store.client.keys('repl-check:*')).sort();
      assert.deepEqual(
        keys,
        ['{repl:hub/mirror}:order', '{repl:hub/mirror}:records', '{repl:hub/mirror}:state', '{repl:other}:state'].map((k) => `repl-check:${k}`),
      );
      assert.equal(await store.replication.clearRule('hub/mirror'), 1);
      assert.deepEqual(await store.client.keys('repl-check:*'), ['repl-check:{repl:other}:state']);
    } finally {
      await store.client.del(...(await store.client.keys('repl-check:*')));
      await store.close();
    }
  });

  it('skips catalog entries and blob index entries whose repository keys are missing', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const store = await openStore(shared, { keyPrefix: prefix });
    try {
      await store.linkBlob('real', { digest: digestOf('b'), size: 1 });
      // What a put leaves behind when Redis dies between the index step and the repository script.
      await store.client.zadd(`${prefix}catalog`, 0, 'phantom');
      await store.client.zadd(`${prefix}{blob:${digestOf('b')}}:repos`, 0, 'phantom');
      assert.deepEqual(await store.listRepositories({}), ['real']);
      assert.deepEqual(await store.listRepositories({ n: 1 }), ['real']);
      assert.deepEqual(await store.blobRepositories(digestOf('b'), 1), ['real']);
      assert.equal(await store.repositoryExists('phantom'), false);
      // Names seen to exist are not asked about again (their `exists` key is never deleted); the
      // phantom still is, on every listing, and shows once its repository script has run.
      const existsCalls = async () => Number(/cmdstat_exists:calls=(\d+)/.exec(await store.client.info('commandstats'))?.[1] ?? 0);
      const before = await existsCalls();
      assert.deepEqual(await store.listRepositories({}), ['real']);
      assert.equal((await existsCalls()) - before, 1);
      await store.linkBlob('phantom', { digest: digestOf('b'), size: 1 });
      assert.deepEqual(await store.listRepositories({}), ['phantom', 'real']);
      assert.equal(await store.repositoryExists('phantom'), true);
    } finally {
      await store.close();
    }
  });

  it('fails fast with MetadataUnavailableError while Redis is down and recovers by itself', async () => {
    const server = await startRedisServer({ appendonly: true, args: ['--appendfsync', 'always'] });
    const store = await openStore(server, { commandTimeoutMs: 1000 });
    try {
      await store.putManifest('r', manifest('m'), ['latest']);
      await server.kill();
      for (const call of [() => store.resolveTag('r', 'latest'), () => store.ping(), () => store.putManifest('r', manifest('n'), ['x'])]) {
        const started = Date.now();
        await assert.rejects(call(), MetadataUnavailableError);
        assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
      }
      await server.restart();
      await eventually(() => store.ping(), 10_000);
      assert.equal(await store.resolveTag('r', 'latest'), digestOf('m'));
      await store.putManifest('r', manifest('n'), ['x']);
      assert.equal(await store.resolveTag('r', 'x'), digestOf('n'));
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('times out instead of hanging when Redis accepts but does not answer', async () => {
    const server = await startRedisServer();
    const store = await openStore(server, { commandTimeoutMs: 300 });
    try {
      server.pause();
      const started = Date.now();
      await assert.rejects(store.resolveTag('r', 't'), MetadataUnavailableError);
      assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
      server.resume();
      await eventually(() => store.ping(), 10_000);
    } finally {
      server.resume();
      await store.close();
      await server.stop();
    }
  });

  it('leaves no half-written manifest when Redis is killed in the middle of pushes', async () => {
    const server = await startRedisServer({ appendonly: true, args: ['--appendfsync', 'always'] });
    const store = await openStore(server);
    try {
      // Eight pushers go on until Redis is gone, so some pushes are in flight when it dies.
      const outcomes: boolean[] = [];
      let next = 0;
      const push = (i: number) => store.putManifest('r', manifest(`m${i}`, { subject: digestOf(`s${i % 5}`) }), [`t${i}`, `shared${i % 7}`]);
      const pushers = Array.from({ length: 8 }, async () => {
        while (next < 100_000) {
          const i = next++;
          outcomes[i] = await push(i).then(
            () => true,
            () => false,
          );
          if (!outcomes[i]) return;
        }
      });
      await eventually(async () => {
        if (next < 200) throw new Error('not yet');
      }, 10_000);
      await server.kill();
      await Promise.all(pushers);
      assert.ok(
        outcomes.some((ok) => !ok),
        'no push was cut off',
      );
      await server.restart();
      await eventually(() => store.ping(), 10_000);

      const tags = await store.listTags('r', {});
      for (let i = 0; i < outcomes.length; i++) {
        const digest = digestOf(`m${i}`);
        const linked = (await store.getManifest('r', digest)) !== undefined;
        const tagged = (await store.resolveTag('r', `t${i}`)) === digest;
        // All or nothing: the manifest and its own tag are both there or both absent.
        assert.equal(linked, tagged, `push ${i}: manifest ${linked}, tag ${tagged}`);
        if (outcomes[i]) assert.ok(linked, `acknowledged push ${i} lost`);
      }
      for (const tag of tags) {
        const digest = await store.resolveTag('r', tag);
        assert.ok(digest !== undefined && (await store.getManifest('r', digest)) !== undefined, `tag ${tag} dangles`);
      }
      for (let s = 0; s < 5; s++) {
        for (const ref of await store.listReferrers('r', digestOf(`s${s}`))) assert.equal(ref.subject, digestOf(`s${s}`));
      }
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('warns when Redis keeps nothing on disk, and only then', async () => {
    const store = await openStore(shared);
    const durable = await startRedisServer({ appendonly: true });
    const durableStore = await openStore(durable);
    const snapshotting = await startRedisServer({ save: '3600 1' });
    const snapshotStore = await openStore(snapshotting);
    try {
      assert.match((await warnIfEphemeral(store)) ?? '', /keeps nothing on disk/);
      assert.equal(await warnIfEphemeral(durableStore), undefined);
      assert.equal(await warnIfEphemeral(snapshotStore), undefined);
    } finally {
      await Promise.all([store.close(), durableStore.close(), snapshotStore.close()]);
      await Promise.all([durable.stop(), snapshotting.stop()]);
    }
  });

  it('stays silent when CONFIG is disabled', async () => {
    const server = await startRedisServer({ args: ['--rename-command', 'CONFIG', ''] });
    const store = await openStore(server);
    try {
      assert.equal(await warnIfEphemeral(store), undefined);
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('authenticates with username and password', async () => {
    const server = await startRedisServer({ args: ['--requirepass', 'sekret'] });
    const store = await openStore(server, { password: 'sekret' });
    try {
      await store.linkBlob('r', { digest: digestOf('x'), size: 1 });
      assert.equal(await store.repositoryExists('r'), true);
    } finally {
      await store.close();
      await server.stop();
    }
  });
});

describe('redis event outbox and relay', () => {
  const origin: EventOrigin = { actor: 'ci', actorKind: 'robot' };
  const link = (store: RedisStore, repo: string, name: string) => store.linkBlob(repo, { digest: digestOf(name), size: 1 }, { event: origin });

  async function wholeLog(store: RedisStore): Promise<LoggedRecord[]> {
    const all: LoggedRecord[] = [];
    for (let pages = 0; ; pages++) {
      assert.ok(pages < 1000, 'paging does not end');
      const page = await store.events.read(all[all.length - 1]?.position, 100);
      if (page.length === 0) return all;
      all.push(...page);
    }
  }

  /** The digests logged for `repo`, in log order. */
  function digestsOf(log: LoggedRecord[], repo: string): string[] {
    return log.flatMap(({ record }) => (record.kind === 'blob_linked' && record.repository === repo ? [record.digest] : []));
  }

  async function drain(store: RedisStore): Promise<number> {
    let moved = 0;
    for (let rounds = 0; ; rounds++) {
      assert.ok(rounds < 1000, 'relay does not end');
      const n = await store.events.relay(1000);
      if (n === 0) return moved;
      moved += n;
    }
  }

  it('keeps its keys under the prefix: the outbox in the repository slot, the rest in {events}', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const store = await openStore(shared, { keyPrefix: prefix });
    try {
      await link(store, 'lib/app', 'b');
      await store.events.relay(10);
      await store.events.updateEndpoint('hook', 0, { revision: 1 });
      const [first] = await wholeLog(store);
      assert.ok(first);
      await store.events.putDeadLetter('hook', { id: 'x', record: first.record, attempts: 1, lastError: 'e', deadAt: 1 }, 5);
      const keys = (await store.client.keys(`${prefix}*`)).filter((k) => k.includes('events') || k.includes('outbox')).sort();
      const expected = [
        '{events}:dead:hook',
        '{events}:endpoints',
        '{events}:letters:hook',
        '{events}:log',
        '{events}:pending',
        '{events}:relayed',
        '{events}:seq',
        '{repo:lib/app}:outbox',
      ];
      assert.deepEqual(keys, expected.map((k) => `${prefix}${k}`).sort());
    } finally {
      await store.close();
    }
  });

  it('relays from two processes at once while others write, logging each record once and in order per repository', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const [one, two] = await Promise.all([openStore(shared, { keyPrefix: prefix }), openStore(shared, { keyPrefix: prefix })]);
    try {
      const repos = ['r0', 'r1', 'r2', 'r3'];
      const perRepo = 40;
      let writing = true;
      const writers = repos.map(async (repo, r) => {
        for (let i = 0; i < perRepo; i++) await link(r % 2 === 0 ? one : two, repo, `${repo}-${i}`);
      });
      // Small batches, so the two relays keep reading the same outbox entries and racing to log them.
      const relayer = async (store: RedisStore) => {
        let moved = 0;
        for (let rounds = 0; writing; rounds++) {
          assert.ok(rounds < 100_000, 'relay loop does not end');
          moved += await store.events.relay(3);
          await new Promise((resolve) => setImmediate(resolve));
        }
        return moved;
      };
      const relays = [relayer(one), relayer(two), relayer(one), relayer(two)];
      await Promise.all(writers);
      writing = false;
      const moved = (await Promise.all(relays)).reduce((a, b) => a + b, 0) + (await drain(one));
      const log = await wholeLog(one);
      assert.equal(moved, repos.length * perRepo, 'relay counts each record once');
      assert.equal(log.length, repos.length * perRepo);
      assert.equal(new Set(log.map((l) => l.record.id)).size, log.length, 'a record was logged twice');
      assert.ok(
        log.every((l, i) => l.seq === i + 1),
        'seq is not gap-free',
      );
      for (const repo of repos) {
        assert.deepEqual(
          digestsOf(log, repo),
          Array.from({ length: perRepo }, (_, i) => digestOf(`${repo}-${i}`)),
          repo,
        );
        assert.equal(await one.client.xlen(`${prefix}{repo:${repo}}:outbox`), 0);
      }
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('logs nothing twice when a relay stopped between logging and deleting the outbox entries', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const store = await openStore(shared, { keyPrefix: prefix });
    const outbox = `${prefix}{repo:lib/app}:outbox`;
    try {
      for (let i = 0; i < 5; i++) await link(store, 'lib/app', `a${i}`);
      assert.equal(await store.events.relayWithoutDelete('lib/app', 100), 5);
      assert.equal(await store.client.xlen(outbox), 5, 'the entries are still in the outbox, as after a crash');
      assert.equal(await store.events.relayWithoutDelete('lib/app', 100), 0, 'and a second crashed relay logs none of them again');
      for (let i = 5; i < 7; i++) await link(store, 'lib/app', `a${i}`);
      assert.equal(await drain(store), 2);
      assert.equal(await store.client.xlen(outbox), 0);
      const log = await wholeLog(store);
      assert.deepEqual(
        digestsOf(log, 'lib/app'),
        Array.from({ length: 7 }, (_, i) => digestOf(`a${i}`)),
      );
      assert.deepEqual(
        log.map((l) => l.seq),
        [1, 2, 3, 4, 5, 6, 7],
      );
    } finally {
      await store.close();
    }
  });

  it('finds a repository stranded out of the pending index by the sweep', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const store = await openStore(shared, { keyPrefix: prefix });
    const pending = `${prefix}{events}:pending`;
    try {
      assert.equal(await store.events.relay(10), 0, "the process's first relay (which sweeps) finds nothing");
      for (let i = 0; i < 3; i++) await link(store, 'lib/lost', `l${i}`);
      await link(store, 'lib/fine', 'f');
      await store.client.zrem(pending, 'lib/lost');
      assert.equal(await store.events.relay(100), 1, 'only the indexed repository is relayed');
      assert.equal(await store.events.relay(100), 0, 'the stranded one stays stranded without a sweep');
      assert.equal(await store.events.relay(100, { sweep: true }), 3);
      assert.deepEqual(
        digestsOf(await wholeLog(store), 'lib/lost'),
        [0, 1, 2].map((i) => digestOf(`l${i}`)),
      );

      // A process that starts later sweeps on its first relay.
      await link(store, 'lib/lost', 'l3');
      await store.client.zrem(pending, 'lib/lost');
      const later = await openStore(shared, { keyPrefix: prefix });
      try {
        assert.equal(await later.events.relay(100), 1);
      } finally {
        await later.close();
      }
    } finally {
      await store.close();
    }
  });

  it('drops a repository from the pending index only once its outbox is empty and the grace period has passed', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const store = await openStore(shared, { keyPrefix: prefix });
    const eager = await openStore(shared, { keyPrefix: prefix }, { eventPendingGraceMs: 0 });
    const pending = `${prefix}{events}:pending`;
    try {
      await eager.events.relay(0); // its first relay's sweep, out of the way
      await link(store, 'lib/app', 'a');
      const joined = Number(await store.client.zscore(pending, 'lib/app'));
      assert.ok(joined > 0);
      await eventually(async () => assert.ok(Date.now() > joined), 5_000);
      assert.equal(await eager.events.relay(100), 1);
      assert.notEqual(await store.client.zscore(pending, 'lib/app'), null, 'kept: the outbox was not empty when read');
      assert.equal(await store.events.relay(100), 0);
      assert.notEqual(await store.client.zscore(pending, 'lib/app'), null, 'kept within the grace period');
      assert.equal(await eager.events.relay(100), 0);
      assert.equal(await store.client.zscore(pending, 'lib/app'), null, 'dropped: empty, and joined longer ago than the grace period');
      await link(store, 'lib/app', 'b');
      assert.notEqual(await store.client.zscore(pending, 'lib/app'), null, 'a writer joins again');
      assert.equal(await drain(eager), 1);
    } finally {
      await Promise.all([store.close(), eager.close()]);
    }
  });
});

describe('redis cluster specifics', () => {
  it('spreads repositories over slots and warns about every ephemeral primary', async () => {
    const store = new RedisStore(redisConfigSchema.parse({ cluster: { nodes: cluster.urls }, keyPrefix: 'spread:' }));
    try {
      assert.equal(await store.waitUntilReady(5000), true);
      const repos = Array.from({ length: 30 }, (_, i) => `team/app-${i}`);
      for (const repo of repos) await store.putManifest(repo, manifest(repo), ['v1']);
      assert.deepEqual(await store.listRepositories({}), [...repos].sort());
      const masters = (store.client as Cluster).nodes('master');
      const counts = await Promise.all(masters.map((node) => node.dbsize()));
      assert.ok(counts.filter((c) => c > 0).length >= 2, `keys on ${counts.join('/')}`);
      const warning = (await warnIfEphemeral(store)) ?? '';
      for (const node of cluster.nodes) assert.ok(warning.includes(`:${node.port}`), warning);
    } finally {
      await store.close();
    }
  });
});

describe('redis sentinel', () => {
  it('finds the primary through Sentinel', async () => {
    const primary = await startRedisServer();
    const sentinel = await startRedisSentinel(primary, 'berthmain');
    const store = new RedisStore(
      redisConfigSchema.parse({ sentinel: { name: 'berthmain', sentinels: [{ host: '127.0.0.1', port: sentinel.port }] }, keyPrefix: 'sent:' }),
    );
    try {
      assert.equal(await store.waitUntilReady(5000), true);
      await store.putManifest('r', manifest('m'), ['v1']);
      assert.equal(await store.resolveTag('r', 'v1'), digestOf('m'));
      assert.equal((await store.client.info('server')).includes(`tcp_port:${primary.port}`), true);
    } finally {
      await store.close();
      await sentinel.stop();
      await primary.stop();
    }
  });
});

describe('redis config', () => {
  it('applies defaults and accepts the documented shapes', () => {
    const parsed = redisConfigSchema.parse({});
    assert.equal(parsed.keyPrefix, 'berth:');
    assert.equal(parsed.commandTimeoutMs, 2000);
    redisConfigSchema.parse({ url: 'rediss://user:pw@redis.example:6380/2' });
    redisConfigSchema.parse({ sentinel: { name: 'mymaster', sentinels: [{ host: 's1', port: 26379 }, { host: 's2' }] }, password: 'p' });
    redisConfigSchema.parse({ cluster: { nodes: ['redis://n1:7000', 'redis://n2:7001'] }, username: 'berth', password: 'p' });
  });

  it('rejects unknown keys, other schemes, braces in the prefix and two modes at once', () => {
    assert.throws(() => redisConfigSchema.parse({ host: 'x' }));
    assert.throws(() => redisConfigSchema.parse({ url: 'http://x:6379' }));
    assert.throws(() => redisConfigSchema.parse({ keyPrefix: 'a{b}:' }));
    assert.throws(() => redisConfigSchema.parse({ url: 'redis://x', cluster: { nodes: ['redis://y'] } }));
    assert.throws(() => redisConfigSchema.parse({ cluster: { nodes: ['redis://y'] }, db: 3 }));
  });
});
