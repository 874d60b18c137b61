import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, startBerthProcess } from '../helpers/berth-process.js';
import { randomBlob, RegistryClient, sha256 } from '../helpers/oci.js';

describe('cluster mode (http.workers: 2, embedded metadata)', () => {
  let dir = '';
  after(async () => rm(dir, { recursive: true, force: true }));

  it('serves pushes and pulls from both workers, sums their metrics, and stops on SIGTERM', async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-cluster-'));
    const metricsPort = await freePort();
    const berth = await startBerthProcess({
      dataDir: dir,
      config: { log: { level: 'info', access: false }, http: { workers: 2 }, metrics: { port: metricsPort } },
    });
    try {
      const c = new RegistryClient(berth.url);
      // Separate connections are spread over the workers, so chunks of one upload land on both.
      const b = randomBlob(3 * 1024 * 1024 + 11);
      const post = await c.fetch('/v2/cluster/app/blobs/uploads/', { method: 'POST' });
      const location = post.headers.get('location') as string;
      const chunk = 512 * 1024;
      for (let off = 0; off < b.size; off += chunk) {
        const part = b.data.subarray(off, Math.min(off + chunk, b.size));
        const res = await fetch(`${berth.url}${location}`, {
          method: 'PATCH',
          body: part,
          headers: { 'Content-Range': `${off}-${off + part.length - 1}`, Connection: 'close' },
        });
        assert.equal(res.status, 202, await res.text());
      }
      assert.equal((await c.fetch(`${location}?digest=${b.digest}`, { method: 'PUT' })).status, 201);
      const img = await c.pushImage('cluster/app', 'v1', [1000, 2000]);
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`${berth.url}/v2/cluster/app/manifests/v1`, { headers: { Connection: 'close' } });
        assert.equal(res.headers.get('docker-content-digest'), img.manifest.digest);
      }
      const get = await c.fetch(`/v2/cluster/app/blobs/${b.digest}`);
      assert.equal(sha256(Buffer.from(await get.arrayBuffer())), b.digest);

      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const pulls = /^berth_pulls_total\{repository="cluster\/app"\} (\d+)/m.exec(metrics);
      assert.equal(pulls?.[1], '10', metrics.slice(0, 2000));
    } finally {
      berth.child.kill('SIGTERM');
      const [code] = (await once(berth.child, 'exit')) as [number | null];
      assert.equal(code, 0, berth.output());
    }
  });
});
