import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBerthProcesses, type BerthProcess } from '../helpers/berth-process.js';
import { blob, imageManifest, randomBlob, RegistryClient, sha256 } from '../helpers/oci.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';

const MiB = 1024 * 1024;

/** Several Berth processes over one Redis and one storage, as behind a load balancer. */
function multiProcessSuite(name: string, makeStorage: () => Promise<(dir: string) => Record<string, unknown>>): void {
  describe(`three Berth processes over one Redis and ${name}`, () => {
    let redis: RedisServer;
    let dir: string;
    let procs: BerthProcess[] = [];
    let clients: RegistryClient[] = [];
    let storage: (dir: string) => Record<string, unknown>;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'berth-multi-'));
      redis = await startRedisServer();
      storage = await makeStorage();
      const config = {
        log: { level: 'info', access: false },
        storage: storage(dir),
        metadata: { store: 'redis', redis: { url: redis.url, keyPrefix: `mp-${randomBytes(4).toString('hex')}:` } },
      };
      procs = await startBerthProcesses(3, { dataDir: dir, config });
      clients = procs.map((p) => new RegistryClient(p.url));
    });
    after(async () => {
      await Promise.all(procs.map((p) => p.stop()));
      await redis?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    it('finishes a chunked upload whose PATCHes alternate between processes, verifying the digest', async () => {
      const b = randomBlob(6 * MiB + 123);
      const post = await clients[0]!.fetch('/v2/multi/app/blobs/uploads/', { method: 'POST' });
      assert.equal(post.status, 202);
      let location = post.headers.get('location') as string;
      const chunk = MiB;
      let i = 0;
      for (let off = 0; off < b.size; off += chunk, i++) {
        const part = b.data.subarray(off, Math.min(off + chunk, b.size));
        const res = await clients[i % 3]!.fetch(location, { method: 'PATCH', body: part, headers: { 'Content-Range': `${off}-${off + part.length - 1}` } });
        assert.equal(res.status, 202, await res.text());
        location = res.headers.get('location') as string;
      }
      const status = await clients[(i + 1) % 3]!.fetch(location);
      assert.equal(status.headers.get('range'), `0-${b.size - 1}`);
      const wrong = await clients[i % 3]!.fetch(`${location}?digest=${sha256('not it')}`, { method: 'PUT' });
      assert.equal(wrong.status, 400);
      // A wrong digest discards the upload; push again, alternating, and finish with the right one.
      const again = await clients[1]!.fetch('/v2/multi/app/blobs/uploads/', { method: 'POST' });
      location = again.headers.get('location') as string;
      for (let off = 0, j = 0; off < b.size; off += chunk, j++) {
        const part = b.data.subarray(off, Math.min(off + chunk, b.size));
        const res = await clients[j % 3]!.fetch(location, { method: 'PATCH', body: part, headers: { 'Content-Range': `${off}-${off + part.length - 1}` } });
        assert.equal(res.status, 202);
      }
      const put = await clients[2]!.fetch(`${location}?digest=${b.digest}`, { method: 'PUT' });
      assert.equal(put.status, 201, await put.text());
      for (const c of clients) {
        const get = await c.fetch(`/v2/multi/app/blobs/${b.digest}`);
        assert.equal(sha256(Buffer.from(await get.arrayBuffer())), b.digest);
      }
    });

    it('shows the same tags, mounts, referrers and deletes whichever process answers', async () => {
      const img = await clients[0]!.pushImage('multi/tags', 'v1', [1000, 2000]);
      await clients[1]!.pushManifest('multi/tags', 'v2', img.manifest);
      const mount = await clients[2]!.fetch(`/v2/multi/other/blobs/uploads/?mount=${img.layers[0]!.digest}&from=multi/tags`, { method: 'POST' });
      assert.equal(mount.status, 201);
      const empty = blob('{}');
      await clients[0]!.pushBlob('multi/tags', empty);
      const art = imageManifest(empty, [], {
        artifactType: 'application/vnd.example.test',
        subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.manifest.digest, size: img.manifest.size },
      });
      await clients[1]!.pushManifest('multi/tags', art.digest, art);
      for (const c of clients) {
        assert.deepEqual(((await (await c.fetch('/v2/multi/tags/tags/list')).json()) as { tags: string[] }).tags, ['v1', 'v2']);
        assert.equal((await c.fetch(`/v2/multi/other/blobs/${img.layers[0]!.digest}`, { method: 'HEAD' })).status, 200);
        const refs = (await (await c.fetch(`/v2/multi/tags/referrers/${img.manifest.digest}`)).json()) as { manifests: Array<{ digest: string }> };
        assert.deepEqual(
          refs.manifests.map((m) => m.digest),
          [art.digest],
        );
      }
      assert.equal((await clients[2]!.fetch('/v2/multi/tags/manifests/v2', { method: 'DELETE' })).status, 202);
      assert.equal((await clients[0]!.fetch(`/v2/multi/other/blobs/${img.layers[0]!.digest}`, { method: 'DELETE' })).status, 202);
      for (const c of clients) {
        assert.equal((await c.fetch('/v2/multi/tags/manifests/v2')).status, 404);
        assert.equal((await c.fetch('/v2/multi/tags/manifests/v1')).status, 200);
        assert.equal((await c.fetch(`/v2/multi/other/blobs/${img.layers[0]!.digest}`, { method: 'HEAD' })).status, 404);
      }
    });

    it('finishes on another process an upload started on a process that was then killed', async () => {
      const b = randomBlob(3 * MiB + 5);
      const victim = procs[2]!;
      const vc = clients[2]!;
      const post = await vc.fetch('/v2/multi/killed/blobs/uploads/', { method: 'POST' });
      const location = post.headers.get('location') as string;
      const first = await vc.fetch(location, { method: 'PATCH', body: b.data.subarray(0, 2 * MiB), headers: { 'Content-Range': `0-${2 * MiB - 1}` } });
      assert.equal(first.status, 202);
      await victim.kill();
      const status = await clients[0]!.fetch(location);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), `0-${2 * MiB - 1}`);
      const put = await clients[1]!.fetch(`${location}?digest=${b.digest}`, {
        method: 'PUT',
        body: b.data.subarray(2 * MiB),
        headers: { 'Content-Range': `${2 * MiB}-${b.size - 1}` },
      });
      assert.equal(put.status, 201, await put.text());
      const get = await clients[0]!.fetch(`/v2/multi/killed/blobs/${b.digest}`);
      assert.equal(sha256(Buffer.from(await get.arrayBuffer())), b.digest);
    });
  });
}

let s3: S3rverHandle | undefined;
after(async () => s3?.stop());

multiProcessSuite('a shared filesystem directory', async () => (dir) => ({ driver: 'filesystem', filesystem: { root: join(dir, 'shared-storage') } }));
multiProcessSuite('S3 (s3rver)', async () => {
  s3 ??= await startS3rver();
  const server = s3;
  const prefix = `mp-${randomBytes(4).toString('hex')}`;
  return () => ({ driver: 's3', s3: server.config({ prefix }) });
});
