import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ReplicationError } from '../../server/registry/replication/errors.js';
import { randomBlob, sha256 } from '../helpers/oci.js';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { collect } from '../proxy/helpers.js';
import { bufferSource, type Interposer, makeRemote, signal, startInterposer } from './helpers.js';

/**
 * A loopback proxy in front of a real Berth breaks one exchange: the upload must pick up from the
 * offset Berth reports (not the one the client believes), and a 429 must be waited out.
 */
describe('replication remote: resume and rate limits', () => {
  let reg: TestRegistry;
  const open: Interposer[] = [];

  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    for (const proxy of open) await proxy.close();
    await reg?.close();
  });

  it('resumes an upload whose PATCH was reset after the registry took the chunk', async () => {
    let patches = 0;
    const proxy = await startInterposer(reg.url, (req) => {
      if (req.method !== 'PATCH' || ++patches !== 2) return { handled: false };
      // Berth stores the second chunk; its answer never reaches the client.
      return {
        handled: false,
        afterwards: (res) => {
          res.socket?.destroy();
          return true;
        },
      };
    });
    open.push(proxy);
    const { remote } = makeRemote({ urls: [proxy.url] });
    const layer = randomBlob(300_000);
    const source = bufferSource(layer.data);
    try {
      assert.equal(await remote.putBlob('team/resume', layer.digest, layer.size, source.open, { chunkBytes: 64 * 1024, signal: signal() }), 'uploaded');
      // Reopened where Berth said it stood: after two chunks, not after the one the client saw accepted.
      assert.deepEqual(source.opened, [0, 2 * 64 * 1024]);
      assert.ok(
        proxy.seen.some((line) => line.startsWith('GET /v2/team/resume/blobs/uploads/')),
        proxy.seen.join('\n'),
      );
      const back = await remote.openBlob('team/resume', layer.digest, 0, signal());
      assert.equal(sha256(await collect(back.stream)), layer.digest);
    } finally {
      remote.close();
    }
  });

  it('finds the blob stored when the answer to the finishing PUT is lost', async () => {
    const proxy = await startInterposer(reg.url, (req) => {
      if (req.method !== 'PUT' || !(req.url ?? '').includes('digest=')) return { handled: false };
      return {
        handled: false,
        afterwards: (res) => {
          res.socket?.destroy();
          return true;
        },
      };
    });
    open.push(proxy);
    const { remote } = makeRemote({ urls: [proxy.url] });
    const layer = randomBlob(20_000);
    const source = bufferSource(layer.data);
    try {
      assert.equal(await remote.putBlob('team/lost', layer.digest, layer.size, source.open, { chunkBytes: 8192, signal: signal() }), 'uploaded');
      // Sent once: the lost upload was found finished, not started over.
      assert.deepEqual(source.opened, [0]);
      assert.equal(proxy.seen.filter((line) => line.startsWith('PUT')).length, 1);
    } finally {
      remote.close();
    }
  });

  it('gives up with a retryable ReplicationError when every PATCH fails', async () => {
    const proxy = await startInterposer(reg.url, (req) => {
      if (req.method !== 'PATCH') return { handled: false };
      req.socket.destroy();
      return { handled: true };
    });
    open.push(proxy);
    const { remote } = makeRemote({ urls: [proxy.url] });
    const layer = randomBlob(10_000);
    try {
      const err = await remote.putBlob('team/broken', layer.digest, layer.size, bufferSource(layer.data).open, { chunkBytes: 4096, signal: signal() }).then(
        () => assert.fail('uploaded through a proxy that drops every PATCH'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ReplicationError, String(err));
      assert.equal(err.retryable, true);
      assert.match(err.message, /registry target, team\/broken: upload blob/);
      // One try and five retries, each after asking where the upload stood.
      assert.equal(proxy.seen.filter((line) => line.startsWith('PATCH')).length, 6);
    } finally {
      remote.close();
    }
  });

  it('waits out a 429 with Retry-After, then succeeds', async () => {
    let throttled = 0;
    const proxy = await startInterposer(reg.url, (req, res) => {
      if (req.method !== 'PUT' || !(req.url ?? '').includes('/manifests/') || throttled++ > 0) return { handled: false };
      req.resume();
      res.writeHead(429, { 'Retry-After': '0', 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
      return { handled: true };
    });
    open.push(proxy);
    const { remote, events } = makeRemote({ urls: [proxy.url] });
    const config = randomBlob(100);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: [],
      }),
    );
    try {
      await remote.putBlob('team/slow', config.digest, config.size, bufferSource(config.data).open, { chunkBytes: 4096, signal: signal() });
      const digest = sha256(manifest);
      await remote.putManifest(
        'team/slow',
        'v1',
        { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: manifest.length, bytes: manifest },
        signal(),
      );
      assert.equal(proxy.seen.filter((line) => line === 'PUT /v2/team/slow/manifests/v1').length, 2);
      assert.equal(events.filter((e) => e.kind === 'throttled' && e.status === 429).length, 1);
      assert.equal((await remote.headManifest('team/slow', 'v1', signal()))?.digest, digest);
    } finally {
      remote.close();
    }
  });
});
