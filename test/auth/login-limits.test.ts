import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { type LoginCounterStore, MemoryLoginCounters, RedisLoginCounters } from '../../auth/login-counters.js';
import { type LoginLimits, LoginLimiter } from '../../auth/rate-limit.js';
import { setUserPassword } from '../../auth/users.js';
import { type RedisCluster, type RedisServer, startRedisCluster, startRedisServer } from '../helpers/redis-server.js';
import { type Harness, startHarness, tokenFrom } from './harness.js';
import { PASSWORDS, addUsers, baseConfig } from './fixtures.js';

const LIMITS: LoginLimits = { perUserAndAddress: 2, perAddress: 3, perUser: 4, windowSeconds: 10, trustedAddressSeconds: 60 };

/** The limiter's rules, run against every counter store: each must give the same answers. */
function limiterSuite(name: string, open: () => Promise<{ store: LoginCounterStore; close(): Promise<void> }>): void {
  describe(`auth: login limiter on ${name} counters`, () => {
    let store: LoginCounterStore;
    let close: () => Promise<void>;
    let now = 1_000_000_000;
    let run = 0;
    // Each test gets its own user names, so the shared store needs no flushing.
    let u = (x: string) => x;
    before(async () => {
      ({ store, close } = await open());
    });
    after(() => close());
    const limiter = () => new LoginLimiter(LIMITS, store, () => now);
    const begin = () => {
      run++;
      const tag = `${run}-${Math.random().toString(36).slice(2)}`;
      u = (x) => `${x}-${tag}`;
    };
    const failOnce = async (l: LoginLimiter, user: string, address: string) => {
      const a = await l.admit(user, address);
      assert.ok(a.ok, `admitted ${user}@${address}`);
      await a.attempt.fail();
    };

    it('counts per pair in a sliding window, with the wait until a slot frees', async () => {
      begin();
      const l = limiter();
      const addr = `10.0.${run}.1`;
      await failOnce(l, u('alice'), addr);
      now += 4000;
      await failOnce(l, u('alice'), addr);
      const refused = await l.admit(u('alice'), addr);
      assert.deepEqual(refused, { ok: false, retryAfter: 6, limit: 'user-address' });
      now += 6000;
      assert.equal((await l.admit(u('alice'), addr)).ok, true, 'the first attempt left the window');
    });

    it('admits at most the limit of concurrent attempts, atomically', async () => {
      begin();
      const l = limiter();
      const results = await Promise.all(Array.from({ length: 30 }, () => l.admit(u('bob'), `10.1.${run}.1`)));
      assert.equal(results.filter((r) => r.ok).length, LIMITS.perUserAndAddress);
      const many = await Promise.all(Array.from({ length: 30 }, (_, i) => l.admit(u(`guess${i}`), `10.2.${run}.1`)));
      assert.equal(many.filter((r) => r.ok).length, LIMITS.perAddress, 'per address over all user names');
    });

    it('per user over all addresses, except where the user logged in lately', async () => {
      begin();
      const l = limiter();
      const good = await l.admit(u('ci'), '10.9.9.9');
      assert.ok(good.ok);
      await good.attempt.succeed();
      for (let i = 0; i < LIMITS.perUser; i++) await failOnce(l, u('ci'), `10.3.${i}.1`);
      const stranger = await l.admit(u('ci'), '10.4.0.1');
      assert.equal(stranger.ok, false);
      assert.equal(!stranger.ok && stranger.limit, 'user');
      assert.equal((await l.admit(u('ci'), '10.9.9.9')).ok, true, 'the trusted address is not locked out');
      now += LIMITS.trustedAddressSeconds * 1000;
      for (let i = 0; i < LIMITS.perUser; i++) await failOnce(l, u('ci'), `10.6.${i}.1`);
      const late = await l.admit(u('ci'), '10.9.9.9');
      assert.equal(!late.ok && late.limit, 'user', 'trust ends after trustedAddressSeconds');
    });

    it('a correct login clears its pair; cancel gives the slots back', async () => {
      begin();
      const l = limiter();
      await failOnce(l, u('dan'), '10.5.0.1');
      const right = await l.admit(u('dan'), '10.5.0.1');
      assert.ok(right.ok);
      await right.attempt.succeed();
      await failOnce(l, u('dan'), '10.5.0.1');
      const a = await l.admit(u('dan'), '10.5.0.1');
      assert.ok(a.ok, 'only one failure since the correct login');
      await a.attempt.cancel();
      const b = await l.admit(u('dan'), '10.5.0.1');
      assert.ok(b.ok, 'the cancelled attempt did not count');
    });
  });
}

limiterSuite('memory', async () => ({ store: new MemoryLoginCounters(), close: async () => {} }));

let redisServer: RedisServer | undefined;
limiterSuite('redis', async () => {
  redisServer = await startRedisServer();
  const client = new Redis(redisServer.url);
  return {
    store: new RedisLoginCounters(client, 'test:'),
    close: async () => {
      client.disconnect();
      await redisServer?.stop();
    },
  };
});

let cluster: RedisCluster | undefined;
limiterSuite('redis cluster', async () => {
  cluster = await startRedisCluster(3);
  const client = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })));
  return {
    store: new RedisLoginCounters(client, 'test:'),
    close: async () => {
      client.disconnect();
      await cluster?.stop();
    },
  };
});

describe('auth: login floods over HTTP', () => {
  let h: Harness;
  const attacker = '127.0.0.2';
  before(async () => {
    h = await startHarness({ ...baseConfig, loginLimits: { perUserAndAddress: 5, perAddress: 20, perUser: 30, windowSeconds: 300 } }, addUsers);
  });
  after(() => h.close());

  it('40 concurrent bad logins for one user from one address: 5 checked, the rest 429', async () => {
    const before = h.auth.passwordChecks().compares;
    const results = await Promise.all(Array.from({ length: 40 }, () => tokenFrom(h.url, attacker, 'alice', 'wrong')));
    assert.equal(h.auth.passwordChecks().compares - before, 5, 'bcrypt ran exactly the limit of times');
    assert.equal(results.filter((r) => r.status === 401).length, 5);
    const limited = results.filter((r) => r.status === 429);
    assert.equal(limited.length, 35);
    assert.ok(
      limited.every((r) => Number(r.retryAfter) >= 1),
      'Retry-After on every 429',
    );
    assert.equal((JSON.parse(limited[0]?.body ?? '{}') as { errors: Array<{ code: string }> }).errors[0]?.code, 'TOOMANYREQUESTS');
  });

  it('300 concurrent bad logins from one address over many names: at most 20 checked', async () => {
    const from = '127.0.0.3';
    const before = h.auth.passwordChecks().compares;
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => tokenFrom(h.url, from, `guess${i}`, 'wrong')));
    assert.equal(h.auth.passwordChecks().compares - before, 20);
    assert.equal(results.filter((r) => r.status === 429).length, 280);
  });

  it('an attacker cannot lock out an address that logs in correctly, nor the user elsewhere once it did', async () => {
    const ci = '127.0.0.4';
    assert.equal((await tokenFrom(h.url, ci, 'bob', PASSWORDS.bob)).status, 200);
    // 30 addresses guessing bob exhaust the per-user limit...
    await Promise.all(Array.from({ length: 30 }, (_, i) => tokenFrom(h.url, `127.0.1.${i + 1}`, 'bob', 'wrong')));
    assert.equal((await tokenFrom(h.url, '127.0.2.1', 'bob', 'wrong')).status, 429, 'per-user limit reached for strangers');
    // ...but the address bob logged in from goes on working, over and over.
    for (let i = 0; i < 3; i++) assert.equal((await tokenFrom(h.url, ci, 'bob', PASSWORDS.bob)).status, 200);
  });

  it('a correct login from its own address still works after floods from elsewhere', async () => {
    await Promise.all(Array.from({ length: 50 }, () => tokenFrom(h.url, '127.0.3.1', 'carol', 'wrong')));
    assert.equal((await tokenFrom(h.url, '127.0.3.2', 'carol', PASSWORDS.carol)).status, 200, 'another address, per-user limit not reached');
  });

  it('the pair lock lifts after the window, by the injected clock', async () => {
    const from = '127.0.4.1';
    for (let i = 0; i < 5; i++) assert.equal((await tokenFrom(h.url, from, 'alice', 'wrong')).status, 401);
    assert.equal((await tokenFrom(h.url, from, 'alice', PASSWORDS.alice)).status, 429);
    h.clock.now += 301_000;
    assert.equal((await tokenFrom(h.url, from, 'alice', PASSWORDS.alice)).status, 200);
  });
});

describe('auth: a full password queue answers 429 with Retry-After', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(
      { ...baseConfig, passwordChecks: { workers: 1, maxQueued: 2 }, loginLimits: { perUserAndAddress: 1000, perAddress: 1000, perUser: 1000 } },
      async (dir) => {
        await addUsers(dir);
        // A slow hash, so the one worker is still busy while the rest arrive.
        await setUserPassword(`${dir}/auth/htpasswd`, 'slow', 'slow-secret-pw', 12);
      },
    );
  });
  after(() => h.close());

  it('checks what fits (one running, two queued) and refuses the rest without counting them', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => tokenFrom(h.url, '127.0.0.5', 'slow', 'wrong')));
    const stats = h.auth.passwordChecks();
    const busy = results.filter((r) => r.status === 429);
    assert.equal(results.filter((r) => r.status === 401).length, stats.compares);
    assert.ok(stats.compares >= 3 && busy.length >= 1, `checked ${stats.compares}, refused ${busy.length}`);
    assert.equal(stats.rejected, busy.length);
    assert.ok(busy.every((r) => Number(r.retryAfter) >= 1));
    assert.match(busy[0]?.body ?? '', /TOOMANYREQUESTS/);
    assert.equal(stats.workers, 1);
    assert.equal((await tokenFrom(h.url, '127.0.0.5', 'slow', 'slow-secret-pw')).status, 200, 'the pool serves again once the burst is over');
  });
});

describe('auth: login counters on a Redis that is down', () => {
  let redis: RedisServer;
  let client: Redis;
  let h: Harness;
  before(async () => {
    redis = await startRedisServer();
    // As the metadata store's client is set up: no offline queue, so a call fails at once.
    client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    client.on('error', () => {});
    h = await startHarness(baseConfig, addUsers, undefined, { loginCounters: new RedisLoginCounters(client, 'down:') });
  });
  after(async () => {
    await h.close();
    client.disconnect();
    await redis.stop();
  });

  it('answers 503 with Retry-After instead of checking uncounted, and recovers', async () => {
    assert.equal((await tokenFrom(h.url, '127.0.0.30', 'alice', PASSWORDS.alice)).status, 200);
    await redis.kill();
    const before = h.auth.passwordChecks().compares;
    const down = await tokenFrom(h.url, '127.0.0.30', 'alice', PASSWORDS.alice);
    assert.equal(down.status, 503);
    assert.equal(down.retryAfter, '1');
    assert.match(down.body, /login attempt counters/);
    assert.equal(h.auth.passwordChecks().compares, before, 'no password was checked');
    await redis.restart();
    await new Promise<void>((resolve) => (client.status === 'ready' ? resolve() : client.once('ready', () => resolve())));
    assert.equal((await tokenFrom(h.url, '127.0.0.30', 'alice', PASSWORDS.alice)).status, 200);
  });
});
