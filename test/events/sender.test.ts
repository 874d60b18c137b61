import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { berthVersion } from '../../server/operations/version.js';
import { SIGNATURE_HEADER, verifySignature } from '../../server/registry/events/signature.js';
import { MAX_RESPONSE_BYTES, deliveryHeaders, endpointAgent, parseRetryAfter, postEvent, type PostEventRequest } from '../../server/registry/events/sender.js';
import { freePort } from '../helpers/berth-process.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { makeSelfSignedCert } from '../helpers/tls-cert.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

const BODY = Buffer.from('{"specversion":"1.0","id":"e1"}');
/** Long enough that a loaded machine still answers in time; only the hanging server reaches it. */
const TIMEOUT_MS = 10_000;

function post(receiver: WebhookReceiver, extra: Partial<PostEventRequest> = {}) {
  return postEvent({ url: `${receiver.url}/hook`, body: BODY, contentType: 'application/cloudevents+json', timeoutMs: TIMEOUT_MS, ...extra });
}

describe('postEvent', () => {
  let receiver: WebhookReceiver;
  before(async () => {
    receiver = await startWebhookReceiver();
  });
  after(() => receiver.close());

  it('a 2xx is delivered; the body, content type and headers arrive as sent', async () => {
    receiver.reply({ status: 204 });
    const headers = deliveryHeaders({
      eventId: 'e1',
      attempt: 3,
      body: BODY,
      secrets: ['s3cret'],
      staticHeaders: { Authorization: 'Bearer tok' },
      nowSeconds: Date.now() / 1000,
    });
    const outcome = await post(receiver, { headers });
    assert.deepEqual(outcome, { ok: true, status: 204, retryable: false });
    const got = receiver.requests.at(-1)!;
    assert.equal(got.method, 'POST');
    assert.equal(got.url, '/hook');
    assert.deepEqual(got.body, BODY);
    assert.equal(got.headers['content-type'], 'application/cloudevents+json');
    assert.equal(got.headers['content-length'], String(BODY.length));
    assert.equal(got.headers['user-agent'], `Berth/${berthVersion()}`);
    assert.equal(got.headers['berth-event-id'], 'e1');
    assert.equal(got.headers['berth-delivery-attempt'], '3');
    assert.equal(got.headers.authorization, 'Bearer tok');
    assert.equal(verifySignature(got.headers[SIGNATURE_HEADER.toLowerCase()] as string, got.body, 's3cret'), true);
  });

  it('sends no signature header without secrets, and the real version in User-Agent', () => {
    const headers = deliveryHeaders({ eventId: 'e', attempt: 1, body: BODY, nowSeconds: 0 });
    assert.equal(headers[SIGNATURE_HEADER], undefined);
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(headers['User-Agent'], `Berth/${pkg.version}`);
  });

  it('a 500 is retryable and says what the endpoint answered', async () => {
    receiver.reply({ status: 500, body: 'database   down\n' });
    const outcome = await post(receiver);
    assert.equal(outcome.ok, false);
    assert.equal(outcome.status, 500);
    assert.equal(outcome.retryable, true);
    assert.equal(outcome.error, 'endpoint answered 500 Internal Server Error: database down');
  });

  it('408, 425, 429 and 503 are retryable; a Retry-After in seconds or as a date is passed on', async () => {
    const now = Date.UTC(2026, 11, 2, 10, 0, 0);
    receiver.reply(
      { status: 429, headers: { 'Retry-After': '120' } },
      { status: 503, headers: { 'Retry-After': new Date(now + 30_000).toUTCString() } },
      { status: 408 },
      { status: 425 },
    );
    const limited = await post(receiver, { now: () => now });
    assert.deepEqual([limited.status, limited.retryable, limited.retryAfterMs], [429, true, 120_000]);
    const unavailable = await post(receiver, { now: () => now });
    assert.deepEqual([unavailable.status, unavailable.retryable, unavailable.retryAfterMs], [503, true, 30_000]);
    for (const status of [408, 425]) {
      const outcome = await post(receiver);
      assert.deepEqual([outcome.status, outcome.retryable, outcome.retryAfterMs], [status, true, undefined]);
    }
  });

  it('a 404 (any other 4xx) is permanent, with a hint what to check', async () => {
    receiver.reply({ status: 404, body: 'no such hook' }, { status: 401 });
    const missing = await post(receiver);
    assert.deepEqual([missing.ok, missing.status, missing.retryable], [false, 404, false]);
    assert.match(missing.error ?? '', /^endpoint refused the event with 404 Not Found: no such hook \(not retried: check the URL/);
    const unauthorized = await post(receiver);
    assert.deepEqual([unauthorized.status, unauthorized.retryable], [401, false]);
  });

  it('a 301 is permanent: redirects are not followed, and the error names the new place', async () => {
    const before = receiver.requests.length;
    receiver.reply({ status: 301, headers: { Location: 'https://elsewhere.example/hook' } });
    const outcome = await post(receiver);
    assert.deepEqual([outcome.ok, outcome.status, outcome.retryable], [false, 301, false]);
    assert.equal(
      outcome.error,
      'endpoint answered 301 Moved Permanently to https://elsewhere.example/hook: redirects are not followed, configure the URL it points to',
    );
    assert.equal(receiver.requests.length, before + 1, 'one request, to the configured URL only');
  });

  it('reads at most a small cap of a response body', async () => {
    receiver.reply({ status: 400, body: Buffer.alloc(MAX_RESPONSE_BYTES * 4, 'x') });
    const outcome = await post(receiver);
    assert.equal(outcome.status, 400);
    assert.equal(outcome.retryable, false);
    assert.ok((outcome.error ?? '').length < 400, 'the message quotes only the start of the body');
  });

  it('reuses one kept-alive connection per endpoint agent', async () => {
    const agent = endpointAgent(receiver.url);
    try {
      const from = receiver.requests.length;
      for (let i = 0; i < 3; i++) assert.equal((await post(receiver, { agent })).ok, true);
      const ports = new Set(receiver.requests.slice(from).map((r) => r.remotePort));
      assert.equal(ports.size, 1);
    } finally {
      agent.destroy();
    }
  });

  it('an abort ends the attempt as retryable', async () => {
    const controller = new AbortController();
    receiver.reply({ hang: true });
    const pending = post(receiver, { signal: controller.signal });
    // Abort once the request is in, so the hanging reply is spent on it and not on the next test.
    await receiver.received(receiver.requests.length + 1);
    controller.abort();
    const outcome = await pending;
    assert.deepEqual([outcome.ok, outcome.retryable], [false, true]);
    assert.match(outcome.error ?? '', /cancelled/);
    const already = await post(receiver, { signal: AbortSignal.abort() });
    assert.match(already.error ?? '', /cancelled before it started/);
  });

  it('a connection dropped without an answer is retryable', async () => {
    receiver.reply({ close: true });
    const outcome = await post(receiver);
    assert.deepEqual([outcome.ok, outcome.retryable, outcome.status], [false, true, undefined]);
    assert.match(outcome.error ?? '', /^cannot deliver to 127\.0\.0\.1:\d+: /);
  });
});

describe('postEvent without a working endpoint', () => {
  it('times out against a server that never answers, retryably', async () => {
    const silent = await startWebhookReceiver({ fallback: { hang: true } });
    try {
      const outcome = await post(silent, { timeoutMs: 300 });
      assert.deepEqual([outcome.ok, outcome.retryable, outcome.status], [false, true, undefined]);
      assert.equal(outcome.error, `no response from 127.0.0.1:${silent.port} within 300 ms (timeoutSeconds)`);
      assert.equal(silent.requests.length, 1, 'the request did arrive');
    } finally {
      await silent.close();
    }
  });

  it('a closed port is a retryable connection refusal', async () => {
    const port = await freePort();
    const outcome = await postEvent({ url: `http://127.0.0.1:${port}/hook`, body: BODY, contentType: 'application/json', timeoutMs: TIMEOUT_MS });
    assert.deepEqual([outcome.ok, outcome.retryable], [false, true]);
    assert.equal(outcome.error, `cannot deliver to 127.0.0.1:${port}: connection refused: is the receiver running and listening on that port? (ECONNREFUSED)`);
  });

  it('refuses URLs it cannot deliver to, permanently', async () => {
    assert.deepEqual(await postEvent({ url: 'ftp://x/y', body: BODY, contentType: 'a/b', timeoutMs: 1000 }), {
      ok: false,
      retryable: false,
      error: 'only http and https URLs are delivered to, not ftp:',
    });
    assert.equal((await postEvent({ url: 'not a url', body: BODY, contentType: 'a/b', timeoutMs: 1000 })).retryable, false);
  });

  it('refuses a header node cannot send, permanently', async () => {
    const outcome = await postEvent({ url: 'http://127.0.0.1:9/x', body: BODY, contentType: 'a/b', timeoutMs: 1000, headers: { 'X-Bad': 'a\nb' } });
    assert.deepEqual([outcome.ok, outcome.retryable], [false, false]);
    assert.match(outcome.error ?? '', /^cannot build the request: /);
  });
});

describe('postEvent over TLS', () => {
  let scratch: ScratchDir;
  let receiver: WebhookReceiver;
  let ca: string;
  before(async () => {
    scratch = await makeScratchDir('events-tls');
    const cert = makeSelfSignedCert(scratch.path, 'hook', '127.0.0.1');
    ca = readFileSync(cert.certFile, 'utf8');
    receiver = await startWebhookReceiver({ tls: { cert: ca, key: readFileSync(cert.keyFile) } });
  });
  after(async () => {
    await receiver.close();
    await scratch.remove();
  });

  it('delivers to https with the endpoint CA', async () => {
    const agent = endpointAgent(receiver.url, { ca });
    try {
      assert.deepEqual(await post(receiver, { agent }), { ok: true, status: 200, retryable: false });
    } finally {
      agent.destroy();
    }
  });

  it('without the CA the certificate is not trusted, and the error says to give caFile', async () => {
    const agent = endpointAgent(receiver.url);
    try {
      const outcome = await post(receiver, { agent });
      assert.deepEqual([outcome.ok, outcome.retryable], [false, true]);
      assert.match(outcome.error ?? '', /self-signed: give its CA as caFile/);
    } finally {
      agent.destroy();
    }
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and dates, and ignores anything else', () => {
    const now = Date.UTC(2026, 0, 1);
    assert.equal(parseRetryAfter('0', now), 0);
    assert.equal(parseRetryAfter(' 5 ', now), 5000);
    assert.equal(parseRetryAfter(new Date(now + 7000).toUTCString(), now), 7000);
    assert.equal(parseRetryAfter(new Date(now - 7000).toUTCString(), now), 0, 'a date in the past means now');
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('-5', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});
