import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { parseConfig } from '../../server/config.js';
import { Metrics, labelRoute, metricsPlugin, startMetricsServer } from '../../server/operations/metrics.js';

/** Finds one sample in the text exposition; labels are matched exactly, in any order. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[pair[1]!] = pair[2]!;
    if (Object.keys(labels).length !== Object.keys(found).filter((k) => k !== 'le' || 'le' in labels).length) continue;
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/**
 * Metrics are recorded on the server's 'finish', which can come after the client has read the body,
 * so a read right after a response polls (bounded) until the expected request shows up.
 */
async function exposedWhen(metrics: Metrics, ready: (text: string) => boolean, timeoutMs = 2000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await metrics.exposition();
    if (ready(text)) return text;
    if (Date.now() > deadline) return text;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Resolved by the upload route when body bytes have arrived. */
let bodyArrived: () => void = () => undefined;

async function tinyApp(metrics: Metrics, settings: Record<string, unknown> = {}): Promise<{ app: FastifyInstance; base: string }> {
  const config = parseConfig({ metrics: settings });
  const app = Fastify({ logger: false });
  await app.register(metricsPlugin, { metrics, config });
  app.get('/v2/_r/:name/manifests/:reference', async (request) => {
    metrics.recordPull((request.params as { name: string }).name);
    return { ok: true };
  });
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
  app.patch('/v2/_r/:name/blobs/uploads/:id', async (request, reply) => {
    const end = metrics.uploadStarted();
    let bytes = 0;
    try {
      for await (const chunk of request.body as Readable) {
        bytes += (chunk as Buffer).length;
        // The abort test sends one 4 KiB chunk and waits for all of it before disconnecting.
        if (bytes >= 0x1000) bodyArrived();
      }
    } finally {
      end();
    }
    return reply.code(202).send({ bytes });
  });
  app.get('/custom/*', async (request) => {
    labelRoute(request, '/custom/<thing>');
    return 'x'.repeat(10);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  assert.ok(address && typeof address === 'object');
  return { app, base: `http://127.0.0.1:${address.port}` };
}

describe('metrics plugin', () => {
  const metrics = new Metrics({ maxRepositoryLabels: 2, processMetrics: false });
  let app: FastifyInstance;
  let base: string;
  before(async () => {
    ({ app, base } = await tinyApp(metrics));
  });
  after(() => app.close());

  it('labels request durations by route template, method and status', async () => {
    for (const name of ['a', 'b', 'c', 'd']) assert.equal((await fetch(`${base}/v2/_r/${name}/manifests/latest`)).status, 200);
    assert.equal((await fetch(`${base}/nowhere`)).status, 404);
    await (await fetch(`${base}/custom/one/two`)).text();
    const route = '/v2/:name/manifests/:reference';
    const text = await exposedWhen(
      metrics,
      (t) => sample(t, 'berth_http_request_duration_seconds_count', { route: '/custom/<thing>', method: 'GET', status: '200' }) === 1,
    );
    assert.equal(sample(text, 'berth_http_request_duration_seconds_count', { route, method: 'GET', status: '200' }), 4);
    assert.equal(sample(text, 'berth_http_request_duration_seconds_count', { route: 'unmatched', method: 'GET', status: '404' }), 1);
    assert.equal(sample(text, 'berth_http_request_duration_seconds_count', { route: '/custom/<thing>', method: 'GET', status: '200' }), 1);
    assert.ok(!text.includes('/v2/_r/a/manifests'), 'no raw URLs in labels');
    assert.ok(!text.includes('_r/:name'), 'labels show the API path, not the internal rewrite');
    assert.ok((sample(text, 'berth_http_sent_bytes_total', { route }) ?? 0) >= 4 * '{"ok":true}'.length);
  });

  it('caps repository label cardinality', async () => {
    const text = await metrics.exposition();
    assert.equal(sample(text, 'berth_pulls_total', { repository: 'a' }), 1);
    assert.equal(sample(text, 'berth_pulls_total', { repository: 'b' }), 1);
    assert.equal(sample(text, 'berth_pulls_total', { repository: 'other' }), 2);
    assert.equal(sample(text, 'berth_pulls_total', { repository: 'c' }), undefined);
    metrics.recordPush('a');
    metrics.recordPush('zzz');
    const after = await metrics.exposition();
    assert.equal(sample(after, 'berth_pushes_total', { repository: 'a' }), 1);
    assert.equal(sample(after, 'berth_pushes_total', { repository: 'other' }), 1);
  });

  it('counts streamed request bytes and uploads in progress', async () => {
    const body = Buffer.alloc(300_000, 7);
    // A chunked body (no content-length) is counted from the bytes actually received.
    const stream = Readable.from([body.subarray(0, 100_000), body.subarray(100_000)]);
    const res = await fetch(`${base}/v2/_r/a/blobs/uploads/u1`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream' },
      body: Readable.toWeb(stream) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { bytes: 300_000 });
    const uploadRoute = '/v2/:name/blobs/uploads/:id';
    const text = await exposedWhen(metrics, (t) => sample(t, 'berth_http_received_bytes_total', { route: uploadRoute }) !== undefined);
    assert.equal(sample(text, 'berth_http_received_bytes_total', { route: uploadRoute }), 300_000);
    assert.equal(sample(text, 'berth_uploads_in_progress'), 0);
  });

  it('counts a request whose client vanished mid-upload as 499, with the bytes that did arrive', async () => {
    const arrived = new Promise<void>((resolve) => (bodyArrived = resolve));
    const socket = connect(Number(new URL(base).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      'PATCH /v2/_r/gone/blobs/uploads/u2 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `1000\r\n${'b'.repeat(0x1000)}\r\n`,
    );
    await arrived;
    socket.destroy();
    const route = '/v2/:name/blobs/uploads/:id';
    const text = await exposedWhen(metrics, (t) => sample(t, 'berth_http_request_duration_seconds_count', { route, method: 'PATCH', status: '499' }) === 1);
    assert.equal(sample(text, 'berth_http_request_duration_seconds_count', { route, method: 'PATCH', status: '499' }), 1);
    assert.equal(sample(text, 'berth_http_received_bytes_total', { route }), 300_000 + 0x1000);
    const settled = await exposedWhen(metrics, (t) => sample(t, 'berth_uploads_in_progress') === 0);
    assert.equal(sample(settled, 'berth_uploads_in_progress'), 0);
  });

  it('records storage and metadata operations and auth failures', async () => {
    metrics.observeStorage({ driver: 'filesystem', op: 'stat', seconds: 0.002 });
    metrics.observeStorage({ driver: 'filesystem', op: 'stat', seconds: 0.004, error: new RangeError('x') });
    metrics.observeMetadata({ store: 'redis', op: 'setTag', seconds: 0.001, error: Object.assign(new Error('down'), { code: 'ECONNREFUSED' }) });
    metrics.recordAuthFailure('invalid_credentials');
    const text = await metrics.exposition();
    assert.equal(sample(text, 'berth_storage_operation_duration_seconds_count', { driver: 'filesystem', op: 'stat' }), 2);
    assert.equal(sample(text, 'berth_storage_operation_errors_total', { driver: 'filesystem', op: 'stat', error: 'RangeError' }), 1);
    assert.equal(sample(text, 'berth_metadata_operation_errors_total', { store: 'redis', op: 'setTag', error: 'ECONNREFUSED' }), 1);
    assert.equal(sample(text, 'berth_auth_failures_total', { reason: 'invalid_credentials' }), 1);
  });

  it('serves the Prometheus content type', async () => {
    const res = await fetch(`${base}/metrics`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  });
});

describe('metrics token and separate port', () => {
  it('requires the bearer token when one is configured', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const { app, base } = await tinyApp(metrics, { token: 'tok-123' });
    try {
      assert.equal((await fetch(`${base}/metrics`)).status, 401);
      assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
      assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: 'Basic tok-123' } })).status, 401);
      const ok = await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer tok-123' } });
      assert.equal(ok.status, 200);
      assert.match(await ok.text(), /berth_http_request_duration_seconds/);
    } finally {
      await app.close();
    }
  });

  it('serves on a separate listener when metrics.port is set, and not on the registry port', async () => {
    const metrics = new Metrics();
    const { app, base } = await tinyApp(metrics, { port: 0, token: 't' });
    const server = await startMetricsServer({ metrics, config: parseConfig({ http: { host: '127.0.0.1' }, metrics: { port: 0, token: 't' } }) });
    try {
      assert.equal((await fetch(`${base}/metrics`)).status, 404);
      await exposedWhen(metrics, (t) => t.includes('status="404"'));
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`, { headers: { authorization: 'Bearer t' } });
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.match(text, /^process_cpu_user_seconds_total /m, 'Node process metrics are exported');
      assert.equal(sample(text, 'berth_http_request_duration_seconds_count', { route: 'unmatched', method: 'GET', status: '404' }), 1);
    } finally {
      await server.close();
      await app.close();
    }
  });
});
