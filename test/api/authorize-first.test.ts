// Issue 10, item 4: access is decided before a byte of the body is read, and a refused body is
// answered in a way the client can read (no EPIPE from a connection closed under its feet).
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { DISCARD_LIMIT_BYTES } from '../../server/routes/body.js';
import { blob, OCI_INDEX, OCI_MANIFEST } from '../helpers/oci.js';
import { RawConnection } from '../helpers/raw-http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { addUsers, baseConfig, PASSWORDS } from '../auth/fixtures.js';

const MiB = 1024 * 1024;
const emptyIndex = blob(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));

function errorCode(body: Buffer): string | undefined {
  return (JSON.parse(body.toString('utf8')) as { errors: Array<{ code: string }> }).errors[0]?.code;
}

describe('auth on: a body is read only after access is granted', () => {
  let work: string;
  let auth: Auth;
  let reg: TestRegistry;
  let token: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-authfirst-'));
    await addUsers(work);
    auth = await createAuth({ ...baseConfig, enabled: true }, { dataDir: work, log: { info() {}, warn() {}, error() {} } });
    reg = await startTestRegistry({ deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) } });
    const q = new URLSearchParams({ service: 'berth', scope: 'repository:alice/app:pull,push,delete' });
    const res = await fetch(`${reg.url}/auth/token?${q}`, {
      headers: { authorization: `Basic ${Buffer.from(`alice:${PASSWORDS.alice}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    token = ((await res.json()) as { token: string }).token;
  });
  after(async () => {
    await reg?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('answers an anonymous 4 MiB manifest PUT with 401 before the client sent a body byte', async () => {
    const conn = await RawConnection.open(reg.url);
    try {
      await conn.sendHead('PUT', '/v2/alice/app/manifests/v1', { 'Content-Type': OCI_MANIFEST, 'Content-Length': String(4 * MiB) });
      const res = await conn.nextResponse('PUT', 5000);
      assert.equal(conn.bodyBytesSent, 0);
      assert.equal(res.status, 401);
      assert.equal(errorCode(res.body), 'UNAUTHORIZED');
      assert.match(res.headers['www-authenticate'] ?? '', /^Bearer /);
      // The client may still send what it announced: it is thrown away and the connection stays usable.
      await conn.sendBody(Buffer.alloc(4 * MiB, 0x20));
      await conn.sendHead('GET', '/v2/alice/app/tags/list', { Authorization: `Bearer ${token}` });
      assert.equal((await conn.nextResponse('GET')).status, 404);
    } finally {
      conn.close();
    }
  });

  it('with Expect: 100-continue, refuses without asking for the body', async () => {
    const conn = await RawConnection.open(reg.url);
    try {
      await conn.sendHead('PUT', '/v2/alice/app/manifests/v1', { 'Content-Type': OCI_MANIFEST, 'Content-Length': String(4 * MiB), Expect: '100-continue' });
      const res = await conn.nextResponse('PUT', 5000);
      assert.deepEqual(res.interim, [], 'no 100 Continue for a request that is refused');
      assert.equal(res.status, 401);
      assert.equal(conn.bodyBytesSent, 0);
    } finally {
      conn.close();
    }
  });

  it('with Expect: 100-continue, asks an admitted client for the body once access is granted', async () => {
    const conn = await RawConnection.open(reg.url);
    try {
      await conn.sendHead('PUT', '/v2/alice/app/manifests/empty', {
        Authorization: `Bearer ${token}`,
        'Content-Type': OCI_INDEX,
        'Content-Length': String(emptyIndex.size),
        Expect: '100-continue',
      });
      assert.equal(await conn.nextInterim(), 100);
      await conn.sendBody(emptyIndex.data as Buffer);
      const res = await conn.nextResponse('PUT');
      assert.equal(res.status, 201, res.body.toString());
      assert.equal(res.headers['docker-content-digest'], emptyIndex.digest);
    } finally {
      conn.close();
    }
  });

  it('with Expect: 100-continue, an anonymous monolithic blob upload is refused without a 100 either', async () => {
    const conn = await RawConnection.open(reg.url);
    try {
      await conn.sendHead('POST', `/v2/alice/app/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(4 * MiB),
        Expect: '100-continue',
      });
      const res = await conn.nextResponse('POST', 5000);
      assert.deepEqual(res.interim, []);
      assert.equal(res.status, 401);
    } finally {
      conn.close();
    }
  });

  it('answers an anonymous blob DELETE that carries a body before reading it', async () => {
    const conn = await RawConnection.open(reg.url);
    try {
      await conn.sendHead('DELETE', `/v2/alice/app/blobs/${emptyIndex.digest}`, { 'Content-Type': 'application/json', 'Content-Length': String(MiB / 2) });
      const res = await conn.nextResponse('DELETE', 5000);
      assert.equal(res.status, 401);
      assert.equal(conn.bodyBytesSent, 0);
    } finally {
      conn.close();
    }
  });

  it('answers an anonymous manifest DELETE that carries a body before reading it', async () => {
    const conn = await RawConnection.open(reg.url);
    try {
      await conn.sendHead('DELETE', '/v2/alice/app/manifests/v1', { 'Content-Type': 'application/json', 'Content-Length': String(MiB) });
      const res = await conn.nextResponse('DELETE', 5000);
      assert.equal(res.status, 401);
      assert.equal(conn.bodyBytesSent, 0);
    } finally {
      conn.close();
    }
  });
});

describe('a manifest over manifests.maxBytes: the client reads the 413', () => {
  let reg: TestRegistry;
  const big = Buffer.alloc(5 * MiB, 0x20);

  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => reg?.close());

  it('answers a declared 5 MiB before reading it, and keeps the connection', async () => {
    const conn = await RawConnection.open(reg.url);
    try {
      await conn.sendHead('PUT', '/v2/big/app/manifests/v1', { 'Content-Type': OCI_MANIFEST, 'Content-Length': String(big.length) });
      const res = await conn.nextResponse('PUT', 5000);
      assert.equal(conn.bodyBytesSent, 0);
      assert.equal(res.status, 413);
      assert.equal(errorCode(res.body), 'MANIFEST_TOO_LARGE');
      assert.notEqual(res.headers.connection, 'close');
      await conn.sendBody(big);
      await conn.sendHead('GET', '/v2/', {});
      assert.equal((await conn.nextResponse('GET')).status, 200);
    } finally {
      conn.close();
    }
  });

  it('answers a chunked 5 MiB with 413 and keeps the connection', async () => {
    const conn = await RawConnection.open(reg.url);
    try {
      await conn.sendHead('PUT', '/v2/big/app/manifests/v1', { 'Content-Type': OCI_MANIFEST, 'Transfer-Encoding': 'chunked' });
      for (let i = 0; i < big.length; i += 64 * 1024) {
        const chunk = big.subarray(i, i + 64 * 1024);
        await conn.sendBody(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
      }
      await conn.sendBody(Buffer.from('0\r\n\r\n'));
      const res = await conn.nextResponse('PUT');
      assert.equal(res.status, 413);
      assert.equal(errorCode(res.body), 'MANIFEST_TOO_LARGE');
      assert.notEqual(res.headers.connection, 'close');
      await conn.sendHead('GET', '/v2/', {});
      assert.equal((await conn.nextResponse('GET')).status, 200);
    } finally {
      conn.close();
    }
  });

  it('Node fetch, pushing 5 MiB ten times over one kept-alive connection, reads every 413', async () => {
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${reg.url}/v2/big/app/manifests/v${i}`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: big });
      assert.equal(res.status, 413);
      assert.equal(errorCode(Buffer.from(await res.arrayBuffer())), 'MANIFEST_TOO_LARGE');
    }
  });

  it('http.request with a chunked 5 MiB body reads the 413', async () => {
    const url = new URL(`${reg.url}/v2/big/app/manifests/v1`);
    const { status, body } = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'PUT', headers: { 'content-type': OCI_MANIFEST } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      });
      req.on('error', reject);
      for (let i = 0; i < big.length; i += 64 * 1024) req.write(big.subarray(i, i + 64 * 1024));
      req.end();
    });
    assert.equal(status, 413);
    assert.equal(errorCode(body), 'MANIFEST_TOO_LARGE');
  });

  it('does not wait for a declared body beyond the discard limit: answers 413 and closes', async () => {
    const conn = await RawConnection.open(reg.url);
    try {
      await conn.sendHead('PUT', '/v2/big/app/manifests/v1', { 'Content-Type': OCI_MANIFEST, 'Content-Length': String(DISCARD_LIMIT_BYTES + 1) });
      const res = await conn.nextResponse('PUT', 5000);
      assert.equal(res.status, 413);
      assert.equal(res.headers.connection, 'close');
      await conn.waitClosed(5000);
    } finally {
      conn.close();
    }
  });
});
