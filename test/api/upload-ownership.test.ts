// An upload session owns its bytes: a finish links only bytes the session received and hashed, a
// session whose bytes are gone is dead, nothing is swept while a request holds it, and a stalled body
// is cut with 408 keeping what arrived.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { randomBlob, RegistryClient, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const IDLE_SECONDS = 3600;

async function errorCode(res: Response): Promise<string | undefined> {
  return ((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code;
}

describe('upload sessions own their bytes (filesystem + embedded)', () => {
  let reg: TestRegistry;
  let client: RegistryClient;
  let clock = Date.now();
  let onHeld: (() => void) | undefined;
  before(async () => {
    reg = await startTestRegistry({
      config: { uploads: { idleTimeoutSeconds: IDLE_SECONDS, sweepIntervalSeconds: 3600 }, http: { bodyTimeoutSeconds: 0.5 } },
      driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }),
      deps: { now: () => clock, onUploadActive: (delta) => (delta === 1 ? onHeld?.() : undefined) },
    });
    client = new RegistryClient(reg.url);
  });
  after(async () => reg?.close());

  async function startUpload(repo: string): Promise<{ id: string; location: string }> {
    const post = await client.fetch(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    return { id: post.headers.get('docker-upload-uuid') as string, location: post.headers.get('location') as string };
  }

  function patch(location: string, body: Buffer): Promise<Response> {
    return client.fetch(location, { method: 'PATCH', body, headers: { 'Content-Type': 'application/octet-stream' } });
  }

  it("never links another repository's blob to a session whose bytes were swept or lost", async () => {
    const secret = randomBlob(40_000);
    await client.pushBlob('b/private', secret);
    const { id, location } = await startUpload('a/own');
    assert.equal((await patch(location, Buffer.alloc(secret.size, 0x41))).status, 202);
    // Hours pass; empty PATCHes keep the session alive, and the sweep runs.
    for (let i = 0; i < 3; i++) {
      clock += 0.9 * IDLE_SECONDS * 1000;
      assert.equal((await patch(location, Buffer.alloc(0))).status, 202);
    }
    await reg.app.uploads.sweep(clock - IDLE_SECONDS * 1000);
    const kept = await client.fetch(location);
    assert.equal(kept.status, 204);
    assert.equal(kept.headers.get('range'), `0-${secret.size - 1}`, 'a live session keeps its bytes through the sweep');
    // Whatever removes the bytes, a finish may not fall back on "a blob of this digest and size".
    await reg.driver.delete(`uploads/${id}`);
    const put = await client.fetch(`${location}?digest=${secret.digest}`, { method: 'PUT' });
    assert.equal(put.status, 404, await put.clone().text());
    assert.equal(await errorCode(put), 'BLOB_UPLOAD_UNKNOWN');
    assert.equal((await client.fetch(`/v2/a/own/blobs/${secret.digest}`)).status, 404);
    assert.equal((await client.fetch(location)).status, 404, 'a session whose bytes are gone is dead');
  });

  it("refuses junk bytes finished under another repository's digest", async () => {
    const secret = randomBlob(30_000);
    await client.pushBlob('b/private', secret);
    const { location } = await startUpload('a/own');
    assert.equal((await patch(location, Buffer.alloc(secret.size, 0x42))).status, 202);
    const put = await client.fetch(`${location}?digest=${secret.digest}`, { method: 'PUT' });
    assert.equal(put.status, 400);
    assert.equal(await errorCode(put), 'DIGEST_INVALID');
    assert.equal((await client.fetch(`/v2/a/own/blobs/${secret.digest}`)).status, 404);
  });

  it('does not sweep an upload while a PATCH is streaming into it, however long it stalls', async () => {
    const data = randomBlob(64 * 1024);
    const { location } = await startUpload('stall/app');
    const url = new URL(location, reg.url);
    const req = httpRequest(url, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.size } });
    const held = new Promise<void>((resolve) => (onHeld = resolve));
    const response = new Promise<number>((resolve, reject) => {
      req.once('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.once('error', reject);
    });
    const half = data.size / 2;
    req.write(data.data.subarray(0, half));
    await held;
    onHeld = undefined;
    // The request holds the upload; the clock jumps past the idle timeout and the sweep runs.
    clock += 2 * IDLE_SECONDS * 1000;
    await reg.app.uploads.sweep(clock - IDLE_SECONDS * 1000);
    req.end(data.data.subarray(half));
    assert.equal(await response, 202);
    const put = await client.fetch(`${location}?digest=${data.digest}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const get = await client.fetch(`/v2/stall/app/blobs/${data.digest}`);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), data.digest);
  });

  it('cuts a body that stops sending with 408 and keeps the bytes that arrived', { timeout: 20_000 }, async () => {
    const data = randomBlob(3000);
    const { location } = await startUpload('slow/app');
    const url = new URL(location, reg.url);
    const req = httpRequest(url, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.size, 'Content-Range': `0-${data.size - 1}` },
    });
    const answered = new Promise<{ status: number; body: string; connection: string | undefined }>((resolve, reject) => {
      req.once('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
      });
      req.once('error', reject);
    });
    req.write(data.data.subarray(0, 1000));
    const res = await answered;
    req.destroy();
    assert.equal(res.status, 408, res.body);
    assert.equal((JSON.parse(res.body) as { errors: Array<{ code: string }> }).errors[0]?.code, 'REQUEST_TIMEOUT');
    assert.equal(res.connection, 'close');
    const status = await client.fetch(location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), '0-999');
    const rest = await client.fetch(location, {
      method: 'PATCH',
      body: data.data.subarray(1000),
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `1000-${data.size - 1}` },
    });
    assert.equal(rest.status, 202, await rest.text());
    const put = await client.fetch(`${location}?digest=${data.digest}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
  });
});

describe('request headers that never finish', () => {
  it('are answered with 408, not 400', { timeout: 20_000 }, async () => {
    const reg = await startTestRegistry({ deps: { server: { http: { headersTimeout: 300, requestTimeout: 0, connectionsCheckingInterval: 50 } } } });
    try {
      const url = new URL(reg.url);
      const socket = connect(Number(url.port), url.hostname);
      const chunks: Buffer[] = [];
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n');
      // A header line started and never ended, as a slow-loris client would.
      socket.write('X-Slow: a');
      await closed;
      const text = Buffer.concat(chunks).toString('latin1');
      assert.match(text, /^HTTP\/1\.1 408 /, text);
      assert.match(text, /REQUEST_TIMEOUT/);
    } finally {
      await reg.close();
    }
  });
});
