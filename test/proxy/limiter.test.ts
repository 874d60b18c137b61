import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, describe, it } from 'node:test';
import { UpstreamUnavailableError } from '../../server/registry/proxy/errors.js';
import { LimiterWaitExceededError, UpstreamLimiter } from '../../server/registry/proxy/limiter.js';
import type { Upstream } from '../../server/registry/proxy/upstream.js';
import { sha256 } from '../helpers/oci.js';
import { collect, makeUpstream, startFakeServer, until, type FakeServer } from './helpers.js';

describe('proxy limiter', () => {
  it('lets maxConcurrent through, queues the rest first come first served', async () => {
    const limiter = new UpstreamLimiter({ maxConcurrent: 2, requestsPerSecond: 0, maxWaitMs: 5000 });
    const a = await limiter.acquire();
    const b = await limiter.acquire();
    const order: string[] = [];
    const c = limiter.acquire().then((slot) => (order.push('c'), slot));
    const d = limiter.acquire().then((slot) => (order.push('d'), slot));
    assert.equal(limiter.waiting, 2);
    assert.equal(limiter.inFlight, 2);
    a.release();
    a.release(); // a second release gives back nothing more
    const slotC = await c;
    assert.deepEqual(order, ['c']);
    assert.equal(limiter.inFlight, 2);
    b.release();
    const slotD = await d;
    assert.deepEqual(order, ['c', 'd']);
    assert.ok(slotC.waitedMs >= 0 && slotD.waitedMs >= 0);
    slotC.release();
    slotD.release();
    assert.equal(limiter.inFlight, 0);
  });

  it('fails a request that waited longer than maxWaitMs, and the line moves on', async () => {
    const limiter = new UpstreamLimiter({ maxConcurrent: 1, requestsPerSecond: 0, maxWaitMs: 100 });
    const held = await limiter.acquire();
    const started = Date.now();
    await assert.rejects(limiter.acquire(), (err: unknown) => err instanceof LimiterWaitExceededError && err.waitedMs >= 90);
    assert.ok(Date.now() - started >= 90);
    assert.equal(limiter.waiting, 0);
    held.release();
    (await limiter.acquire()).release();
  });

  it('leaves the line when the signal aborts', async () => {
    const limiter = new UpstreamLimiter({ maxConcurrent: 1, requestsPerSecond: 0, maxWaitMs: 5000 });
    const held = await limiter.acquire();
    const controller = new AbortController();
    const waiting = limiter.acquire(controller.signal);
    controller.abort(new Error('client went away'));
    await assert.rejects(waiting, /client went away/);
    assert.equal(limiter.waiting, 0);
    held.release();
  });

  it('caps the start rate with a token bucket', async () => {
    const limiter = new UpstreamLimiter({ maxConcurrent: 100, requestsPerSecond: 20, maxWaitMs: 5000 });
    const started = Date.now();
    // A burst of 20 at once, then one every 50 ms: 30 starts take at least ~500 ms.
    const slots = await Promise.all(Array.from({ length: 30 }, () => limiter.acquire()));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 450, `30 starts at 20/s took only ${elapsed} ms`);
    for (const s of slots) s.release();
  });
});

describe('proxy upstream: its requests go through the limiter', () => {
  const servers: FakeServer[] = [];
  const upstreams: Upstream[] = [];
  after(async () => {
    for (const u of upstreams) u.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  /** Blob responses send their headers and then wait for `finish()`. */
  async function holdingServer(): Promise<{ server: FakeServer; held: http.ServerResponse[] }> {
    const held: http.ServerResponse[] = [];
    const server = await startFakeServer((_req, res) => {
      res.writeHead(200, { 'Content-Length': 4, 'Content-Type': 'application/octet-stream' });
      res.write('bl');
      held.push(res);
    });
    servers.push(server);
    return { server, held };
  }

  it('with maxConcurrent 2, a third blob waits until a stream closes', async () => {
    const { server, held } = await holdingServer();
    const { upstream, events } = makeUpstream({ urls: [server.url], maxConcurrent: 2 });
    upstreams.push(upstream);
    const first = await upstream.openBlob('a/b', sha256('1'));
    await upstream.openBlob('a/b', sha256('2'));
    let thirdOpened = false;
    const third = upstream.openBlob('a/b', sha256('3')).then((blob) => ((thirdOpened = true), blob));
    await until(() => upstream.load.waiting === 1, 'the third request to queue');
    assert.equal(server.requests.length, 2, 'the upstream never sees more than 2 at once');
    assert.equal(thirdOpened, false);

    held[0]?.end('ob');
    assert.deepEqual(await collect(first.stream), Buffer.from('blob'));
    const blob = await third;
    assert.equal(server.requests.length, 3);
    assert.ok(events.some((e) => e.kind === 'throttled'));
    held[1]?.end('ob');
    await until(() => held.length === 3, 'the third response');
    held[2]?.end('ob');
    assert.deepEqual(await collect(blob.stream), Buffer.from('blob'));
  });

  it('fails with a clear 503-style error once maxWaitSeconds is exceeded', async () => {
    const { server, held } = await holdingServer();
    const { upstream } = makeUpstream({ urls: [server.url], maxConcurrent: 1, maxWaitSeconds: 0.2 });
    upstreams.push(upstream);
    const first = await upstream.openBlob('a/b', sha256('1'));
    await assert.rejects(upstream.openBlob('a/b', sha256('2')), (err: unknown) => {
      assert.ok(err instanceof UpstreamUnavailableError, String(err));
      assert.equal(err.reason, 'queue-timeout');
      assert.match(err.message, /too many requests to upstream up: waited \d+ ms/);
      return true;
    });
    assert.equal(server.requests.length, 1);
    held[0]?.end('ob');
    await collect(first.stream);
  });
});
