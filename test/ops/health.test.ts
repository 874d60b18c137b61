import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { assertReady, healthRoutes, runChecks, type HealthCheck } from '../../server/routes/health.js';

async function appWith(checks: Record<string, HealthCheck>, extra: { isDraining?: () => boolean; exposeErrors?: boolean } = {}) {
  const app = Fastify({ logger: false });
  await app.register(healthRoutes, { checks, timeoutMs: 200, ...extra });
  return app;
}

/** Never settles until aborted, like a backend that accepted the connection and went silent. */
const hangs: HealthCheck = (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));

describe('health endpoints', () => {
  it('/healthz answers without consulting any dependency', async () => {
    const app = await appWith({ storage: () => Promise.reject(new Error('down')) });
    const res = await app.inject({ url: '/healthz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok' });
    await app.close();
  });

  it('/readyz is 200 when every check passes', async () => {
    const app = await appWith({ storage: async () => {}, metadata: async () => {} });
    const res = await app.inject({ url: '/readyz' });
    assert.equal(res.statusCode, 200);
    const body = res.json() as { status: string; failed: string[]; checks: Record<string, { status: string }> };
    assert.equal(body.status, 'ok');
    assert.deepEqual(body.failed, []);
    assert.deepEqual(Object.keys(body.checks).sort(), ['metadata', 'storage']);
    await app.close();
  });

  it('/readyz is 503 naming the failing and the timed-out checks', async () => {
    let aborted = false;
    const app = await appWith(
      {
        storage: async () => {},
        metadata: () => Promise.reject(new Error('connect ECONNREFUSED 10.1.2.3:6379')),
        slow: (signal) => {
          signal.addEventListener('abort', () => (aborted = true));
          return hangs(signal);
        },
      },
      {},
    );
    const res = await app.inject({ url: '/readyz' });
    assert.equal(res.statusCode, 503);
    const body = res.json() as { status: string; failed: string[]; checks: Record<string, { status: string; error?: string }> };
    assert.equal(body.status, 'unavailable');
    assert.deepEqual(body.failed.sort(), ['metadata', 'slow']);
    assert.equal(body.checks.storage?.status, 'ok');
    assert.equal(body.checks.metadata?.status, 'failed');
    assert.ok(!JSON.stringify(body).includes('10.1.2.3'), 'internal addresses are not exposed by default');
    assert.equal(aborted, true, 'a timed-out check is told to stop');
    await app.close();
  });

  it('/readyz can include error messages and reports draining', async () => {
    let draining = false;
    const app = await appWith({ metadata: () => Promise.reject(new Error('no route')) }, { exposeErrors: true, isDraining: () => draining });
    assert.equal((await app.inject({ url: '/readyz' })).json<{ checks: { metadata: { error: string } } }>().checks.metadata.error, 'no route');
    draining = true;
    const res = await app.inject({ url: '/readyz' });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json<{ status: string }>().status, 'draining');
    await app.close();
  });
});

describe('start-up checks', () => {
  it('runChecks reports each result and never throws', async () => {
    const results = await runChecks({ a: async () => {}, b: () => Promise.reject('plain string') }, 100);
    assert.deepEqual(
      results.map((r) => [r.name, r.ok, r.error]),
      [
        ['a', true, undefined],
        ['b', false, 'plain string'],
      ],
    );
  });

  it('assertReady fails with one line per unreachable dependency', async () => {
    await assertReady({ storage: async () => {} });
    await assert.rejects(assertReady({ storage: () => Promise.reject(new Error('bucket berth does not exist')), metadata: hangs }, 100), (err: Error) => {
      assert.equal(err.message, 'start-up checks failed:\n  - storage: bucket berth does not exist\n  - metadata: no answer within 100 ms');
      return true;
    });
  });
});
