import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { parseConfig } from '../../server/config.js';
import { accessLogPlugin, loggableUrl, loggerOptions } from '../../server/operations/logging.js';
import { Metrics, metricsPlugin } from '../../server/operations/metrics.js';

async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('condition not met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('structured logging', () => {
  const lines: Record<string, unknown>[] = [];
  const destination = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
  let app: FastifyInstance;
  let base: string;
  /** Resolved by the upload route when body bytes have arrived. */
  let bodyArrived: () => void = () => undefined;

  before(async () => {
    const config = parseConfig({ log: { level: 'info' } });
    app = Fastify(loggerOptions(config, destination));
    await app.register(accessLogPlugin, { config });
    app.get('/hello', async (request) => {
      request.log.info({ user: { name: 'ann', password: 'hunter2' }, token: 'abc', headers: request.headers }, 'inside handler');
      return 'hi there';
    });
    app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
    app.patch('/upload', async (request) => {
      let bytes = 0;
      for await (const chunk of request.body as Readable) {
        bytes += (chunk as Buffer).length;
        bodyArrived();
      }
      return { bytes };
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    assert.ok(address && typeof address === 'object');
    base = `http://127.0.0.1:${address.port}`;
  });
  after(() => app.close());

  function linesFor(requestId: string): Record<string, unknown>[] {
    return lines.filter((l) => l.requestId === requestId);
  }

  it('writes one access line per request and puts the request id on every line', async () => {
    const res = await fetch(`${base}/hello?n=1&token=SECRET&X-Amz-Signature=abc`, {
      headers: { 'x-request-id': 'trace-42', authorization: 'Bearer SECRET' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-request-id'), 'trace-42');
    await res.text();
    // The access line is written on the server's 'finish', which may come after the client has the body.
    await until(() => linesFor('trace-42').some((l) => l.msg === 'request'));
    const own = linesFor('trace-42');
    assert.equal(own.length, 2, JSON.stringify(own));
    const access = own.filter((l) => l.msg === 'request');
    assert.equal(access.length, 1);
    const line = access[0]!;
    assert.equal(line.method, 'GET');
    assert.equal(line.status, 200);
    assert.equal(line.url, '/hello?n=1&token=[redacted]&X-Amz-Signature=[redacted]');
    assert.equal(line.bytesOut, 'hi there'.length);
    assert.equal(typeof line.durationMs, 'number');
    assert.equal(line.level, 'info');
    assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
    assert.ok(!JSON.stringify(lines).includes('SECRET'), 'no secret anywhere in the log');
    const inside = own.find((l) => l.msg === 'inside handler')!;
    assert.deepEqual(inside.user, { name: 'ann', password: '[redacted]' });
    assert.equal(inside.token, '[redacted]');
    assert.equal((inside.headers as Record<string, string>).authorization, '[redacted]');
    assert.ok(!('aborted' in line));
  });

  it('still writes the access line when the client disconnects mid-upload', async () => {
    const address = app.server.address();
    assert.ok(address && typeof address === 'object');
    const arrived = new Promise<void>((resolve) => (bodyArrived = resolve));
    const socket = connect(address.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      'PATCH /upload HTTP/1.1\r\nHost: x\r\nX-Request-Id: cut-short\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `1000\r\n${'a'.repeat(0x1000)}\r\n`,
    );
    // Vanish once the route is reading the body, without finishing it.
    await arrived;
    socket.destroy();
    await until(() => linesFor('cut-short').some((l) => l.msg === 'request'));
    const access = linesFor('cut-short').filter((l) => l.msg === 'request');
    assert.equal(access.length, 1);
    assert.equal(access[0]!.aborted, true);
    assert.equal(access[0]!.status, 499);
    assert.equal(access[0]!.method, 'PATCH');
  });
});

describe('request ids', () => {
  it('replaces an unusable incoming id with a fresh one', async () => {
    const lines: Record<string, unknown>[] = [];
    const config = parseConfig({});
    const app = Fastify(loggerOptions(config, { write: (line) => void lines.push(JSON.parse(line) as Record<string, unknown>) }));
    await app.register(accessLogPlugin, { config });
    app.get('/boom', async () => {
      throw new Error('kaput');
    });
    const res = await app.inject({ url: '/boom', headers: { 'x-request-id': 'bad id with spaces' } });
    const id = res.headers['x-request-id'];
    assert.equal(res.statusCode, 500);
    assert.match(String(id), /^[0-9a-f-]{36}$/);
    const own = lines.filter((l) => l.requestId === id);
    // The error line from Fastify's handler and the single access line.
    assert.deepEqual(own.map((l) => l.msg).sort(), ['kaput', 'request']);
    await app.close();
  });

  it('does not mark injected requests as aborted', async () => {
    const lines: Record<string, unknown>[] = [];
    const config = parseConfig({});
    const app = Fastify(loggerOptions(config, { write: (line) => void lines.push(JSON.parse(line) as Record<string, unknown>) }));
    await app.register(accessLogPlugin, { config });
    await app.register(metricsPlugin, { metrics: new Metrics({ processMetrics: false }), config });
    app.get('/', async () => 'ok');
    await app.inject({ url: '/' });
    const access = lines.filter((l) => l.msg === 'request');
    assert.equal(access.length, 1);
    assert.equal(access[0]!.status, 200);
    assert.ok(!('aborted' in access[0]!));
    await app.close();
  });

  it('can turn the access line off', async () => {
    const lines: string[] = [];
    const config = parseConfig({ log: { access: false } });
    const app = Fastify(loggerOptions(config, { write: (line) => void lines.push(line) }));
    await app.register(accessLogPlugin, { config });
    app.get('/', async () => 'ok');
    const res = await app.inject({ url: '/' });
    assert.ok(res.headers['x-request-id']);
    assert.deepEqual(lines, []);
    await app.close();
  });

  it('hides secret-looking query values only', () => {
    assert.equal(loggableUrl('/v2/a/blobs/uploads/x?digest=sha256:1'), '/v2/a/blobs/uploads/x?digest=sha256:1');
    assert.equal(loggableUrl('/token?account=ann&scope=repository:a:pull&password=p'), '/token?account=ann&scope=repository:a:pull&password=[redacted]');
  });
});
