import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startBerthProcess } from '../helpers/berth-process.js';
import { RegistryClient } from '../helpers/oci.js';

describe('graceful shutdown', () => {
  let dir = '';
  after(async () => rm(dir, { recursive: true, force: true }));

  it('lets an upload in flight at SIGTERM finish, then exits 0 with the bytes kept', async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-shutdown-'));
    const config = { log: { level: 'info', access: false }, http: { shutdownTimeoutSeconds: 20 } };
    const berth = await startBerthProcess({ dataDir: dir, config });
    const post = await fetch(`${berth.url}/v2/drain/app/blobs/uploads/`, { method: 'POST' });
    const location = post.headers.get('location') as string;
    const data = randomBytes(2 * 1024 * 1024);

    const { port } = new URL(berth.url);
    let responded!: (v: { status: number; range: string | undefined }) => void;
    const response = new Promise<{ status: number; range: string | undefined }>((r) => (responded = r));
    const req = request(
      { host: '127.0.0.1', port, method: 'PATCH', path: location, headers: { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' } },
      (res) => {
        res.resume();
        responded({ status: res.statusCode ?? 0, range: res.headers.range });
      },
    );
    req.on('error', (err) => responded({ status: -1, range: String(err) }));
    await new Promise<void>((r) => req.write(data.subarray(0, 1024 * 1024), () => r()));

    // SIGTERM while the PATCH is mid-body; wait for the server to say it is shutting down.
    const shuttingDown = new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        if (chunk.toString().includes('shutting down')) resolve();
      };
      berth.child.stdout?.on('data', onData);
    });
    berth.child.kill('SIGTERM');
    await shuttingDown;
    req.end(data.subarray(1024 * 1024));
    const result = await response;
    assert.equal(result.status, 202, `in-flight PATCH answered ${result.status} ${result.range}\n${berth.output()}`);
    assert.equal(result.range, `0-${data.length - 1}`);
    // Already signalled: wait for the exit rather than signalling again (a second SIGTERM forces it).
    const code = berth.child.exitCode ?? ((await once(berth.child, 'exit')) as [number | null])[0];
    assert.equal(code, 0);

    const again = await startBerthProcess({ dataDir: dir, config });
    try {
      const c = new RegistryClient(again.url);
      const status = await c.fetch(location);
      assert.equal(status.headers.get('range'), `0-${data.length - 1}`);
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      assert.equal((await c.fetch(`${location}?digest=${digest}`, { method: 'PUT' })).status, 201);
    } finally {
      await again.stop();
    }
  });
});
