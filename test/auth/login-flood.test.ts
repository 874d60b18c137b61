import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { setUserPassword } from '../../auth/users.js';
import { type BerthProcess, startBerthProcess } from '../helpers/berth-process.js';
import { RegistryClient } from '../helpers/oci.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { type ScratchDir, makeScratchDir } from '../helpers/scratch.js';
import { tokenFrom } from './harness.js';

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/**
 * 300 bad logins at once against the real registry app, while an authenticated client pulls a
 * manifest over and over. The limits are raised out of the way so every attempt reaches the
 * password check: what is measured is where bcrypt runs, not the limiter.
 */
describe('auth: a login flood does not stall pulls', () => {
  let scratch: ScratchDir;
  let auth: Auth;
  let reg: TestRegistry;
  let client: RegistryClient;

  before(async () => {
    scratch = await makeScratchDir('auth-flood');
    const htpasswd = join(scratch.path, 'auth', 'htpasswd');
    // bcrypt cost 10, the default of `berth user add`: about 70 ms per check in bcryptjs.
    await setUserPassword(htpasswd, 'alice', 'alice-secret-pw', 10);
    await setUserPassword(htpasswd, 'victim', 'victim-secret-pw', 10);
    auth = await createAuth(
      {
        enabled: true,
        userNamespaces: true,
        loginLimits: { perUserAndAddress: 10_000, perAddress: 10_000, perUser: 10_000 },
        // A shorter queue than the default only keeps the test short; the pool behaves the same.
        passwordChecks: { maxQueued: 16 },
      },
      { dataDir: scratch.path, log: { info() {}, warn() {}, error() {} } },
    );
    reg = await startTestRegistry({ deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) } });
    const token = await fetch(`${reg.url}/auth/token?service=berth&scope=repository:alice/app:pull,push`, {
      headers: { authorization: `Basic ${Buffer.from('alice:alice-secret-pw').toString('base64')}` },
    }).then(async (r) => ((await r.json()) as { token: string }).token);
    client = new RegistryClient(reg.url, { authorization: `Bearer ${token}` });
    await client.pushImage('alice/app', 'v1');
  });
  after(async () => {
    await reg?.close();
    await auth?.close();
    await scratch?.remove();
  });

  const pull = async (): Promise<number> => {
    const started = performance.now();
    const res = await client.fetch('/v2/alice/app/manifests/v1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    await res.arrayBuffer();
    assert.equal(res.status, 200);
    return performance.now() - started;
  };

  it('keeps manifest GETs under a second and the event loop free while bcrypt works in the pool', async (t) => {
    const idle: number[] = [];
    for (let i = 0; i < 20; i++) idle.push(await pull());
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    let flooding = true;
    const flood = Promise.all(Array.from({ length: 300 }, () => tokenFrom(reg.url, '127.0.0.9', 'victim', 'wrong'))).finally(() => {
      flooding = false;
    });
    const during: number[] = [];
    while (flooding) during.push(await pull());
    const statuses = await flood;
    loop.disable();
    const stats = auth.passwordChecks();
    const loopMaxMs = loop.max / 1e6;
    t.diagnostic(
      `pull idle p50 ${quantile(idle, 0.5).toFixed(1)} ms max ${Math.max(...idle).toFixed(1)} ms; during the flood (${during.length} pulls) p50 ${quantile(during, 0.5).toFixed(1)} ms max ${Math.max(...during).toFixed(1)} ms; event loop delay max ${loopMaxMs.toFixed(1)} ms; ${stats.compares} checked in ${stats.workers} workers, ${stats.rejected} refused (429)`,
    );
    assert.ok(
      statuses.every((s) => s.status === 401 || s.status === 429),
      'every bad login is refused',
    );
    assert.equal(statuses.filter((s) => s.status === 429).length, stats.rejected, 'what the pool refused got 429');
    assert.ok(stats.compares > 0 && stats.workers >= 1, 'bcrypt ran in worker threads');
    assert.ok(during.length > 0 && Math.max(...during) < 1000, `slowest pull during the flood: ${Math.max(...during).toFixed(0)} ms`);
  });
});

/** Two real `berth serve` processes on one redis-server: a guess on either counts for both. */
describe('auth: with Redis metadata the login counters are shared by all processes', () => {
  let redis: RedisServer;
  let scratch: ScratchDir;
  let a: BerthProcess;
  let b: BerthProcess;

  before(async () => {
    redis = await startRedisServer();
    scratch = await makeScratchDir('auth-redis-limits');
    await mkdir(join(scratch.path, 'auth'), { recursive: true });
    await setUserPassword(join(scratch.path, 'auth', 'htpasswd'), 'robot-like', 'the-right-secret', 4);
    const config = {
      metadata: { store: 'redis', redis: { url: redis.url, keyPrefix: 'shared:' } },
      auth: { enabled: true, loginLimits: { perUserAndAddress: 4, perAddress: 100, perUser: 100 } },
    };
    a = await startBerthProcess({ dataDir: scratch.path, config });
    b = await startBerthProcess({ dataDir: scratch.path, config });
  });
  after(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await redis?.stop();
    await scratch?.remove();
  });

  it('two failures on each process lock the pair on both', async () => {
    for (const p of [a, b, a, b]) assert.equal((await tokenFrom(p.url, '127.0.0.20', 'robot-like', 'wrong')).status, 401);
    for (const p of [a, b]) {
      const res = await tokenFrom(p.url, '127.0.0.20', 'robot-like', 'the-right-secret');
      assert.equal(res.status, 429, `${p.url} sees the other process's failures`);
      assert.ok(Number(res.retryAfter) >= 1);
    }
    assert.equal((await tokenFrom(b.url, '127.0.0.21', 'robot-like', 'the-right-secret')).status, 200, 'another address is not affected');
  });
});
