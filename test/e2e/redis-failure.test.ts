import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBerthProcess, type BerthProcess } from '../helpers/berth-process.js';
import { RegistryClient } from '../helpers/oci.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

async function until(what: string, check: () => Promise<boolean>, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} did not happen within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Berth when Redis goes away and comes back', () => {
  let redis: RedisServer;
  let berth: BerthProcess;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-redis-down-'));
    redis = await startRedisServer({ appendonly: true });
    berth = await startBerthProcess({
      dataDir: dir,
      config: { log: { level: 'info', access: false }, metadata: { store: 'redis', redis: { url: redis.url, commandTimeoutMs: 1000 } } },
    });
  });
  after(async () => {
    await berth?.stop();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 503 UNAVAILABLE quickly, reports not ready, and recovers by itself', async () => {
    const c = new RegistryClient(berth.url);
    const img = await c.pushImage('down/app', 'v1');
    assert.equal((await c.fetch('/readyz')).status, 200);

    await redis.kill();
    const started = Date.now();
    const res = await c.fetch('/v2/down/app/manifests/v1');
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    assert.equal(res.status, 503);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]?.code, 'UNAVAILABLE');
    const push = await c.fetch('/v2/down/app/blobs/uploads/', { method: 'POST' });
    assert.equal(push.status, 503);
    assert.equal((await c.fetch('/readyz')).status, 503);

    await redis.restart();
    await until('readiness after Redis returned', async () => (await c.fetch('/readyz')).status === 200);
    const back = await c.fetch('/v2/down/app/manifests/v1');
    assert.equal(back.status, 200);
    assert.equal(back.headers.get('docker-content-digest'), img.manifest.digest);
    await c.pushImage('down/app', 'v2');
  });
});
