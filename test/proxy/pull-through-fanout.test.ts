import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { buildApp } from '../../server/app.js';
import { parseConfig } from '../../server/config.js';
import { ProxyMetrics } from '../../server/operations/proxy-metrics.js';
import { assembleStorageStack, type StorageStack } from '../../server/storage-stack.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { chunkReads, countingReads } from '../helpers/counting-reads.js';
import { RegistryClient, randomBlob, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

/**
 * Two Berth apps over one storage and metadata store (as two processes of one deployment) and 20
 * clients missing one cold 64 MiB blob through them at once: the upstream serves it once.
 */
describe('proxy namespaces: a cold blob pulled by many clients through two Berths', () => {
  let upstream: TestRegistry;
  const blobGets: string[] = [];
  const manifestRequests: string[] = [];
  let big: Blob;
  let dir: string;
  let storage: StorageStack;
  let reads: Map<string, number>;
  const apps: FastifyInstance[] = [];
  const urls: string[] = [];
  const registries: Registry[] = [];

  before(async () => {
    upstream = await startTestRegistry({
      deps: {
        plugins: async (app: FastifyInstance) => {
          app.addHook('onRequest', async (request) => {
            if (request.method === 'GET' && request.url.includes('/blobs/')) blobGets.push(request.url);
            if (request.url.includes('/manifests/')) manifestRequests.push(`${request.method} ${request.url}`);
          });
        },
      },
    });
    big = randomBlob(64 * 1024 * 1024);
    await new RegistryClient(upstream.url).pushBlob('team/big', big);
    dir = await mkdtemp(join(tmpdir(), 'berth-fanout-'));
    const config = parseConfig({
      dataDir: dir,
      log: { level: 'silent' },
      proxy: { upstreams: [{ namespace: 'hub', urls: [upstream.url], timeoutSeconds: 10 }] },
      // Off by default on the memory driver; on, so the fills' followers share their chunk reads.
      storage: { sharedReads: { enabled: true, spoolDir: join(dir, 'spool') } },
    });
    const counted = countingReads(new MemoryDriver());
    reads = counted.reads;
    storage = assembleStorageStack({ driver: counted.driver, metadata: new EmbeddedStore({ path: join(dir, 'metadata') }) });
    for (let i = 0; i < 2; i++) {
      const registry = new Registry();
      const metrics = new ProxyMetrics(registry, ['hub']);
      registries.push(registry);
      const app = await buildApp({ config, storage, onProxyFill: (event) => metrics.recordFill(event) });
      await app.listen({ host: '127.0.0.1', port: 0 });
      const address = app.server.address();
      if (!address || typeof address === 'string') throw new Error('no address');
      apps.push(app);
      urls.push(`http://127.0.0.1:${address.port}`);
    }
  });
  after(async () => {
    for (const app of apps) await app.close();
    await storage?.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('makes exactly one upstream blob GET, and every client gets verified bytes', async () => {
    const pulls = Array.from({ length: 20 }, async (_, i) => {
      const res = await fetch(`${urls[i % 2] ?? ''}/v2/hub/team/big/blobs/${big.digest}`);
      assert.equal(res.status, 200);
      const hash = createHash('sha256');
      for await (const chunk of res.body ?? []) hash.update(chunk as Uint8Array);
      return `sha256:${hash.digest('hex')}`;
    });
    const digests = await Promise.all(pulls);
    assert.deepEqual(new Set(digests), new Set([big.digest]));
    assert.equal(blobGets.length, 1, blobGets.join('\n'));
    // Each process's followers share one read of a committed chunk (a straggler may read it again).
    for (const [key, count] of chunkReads(reads)) assert.ok(count <= 4, `${key} read ${count} times by the followers of two processes`);

    // Once committed it is linked, ordinary content: HEAD answers from the link, no upstream request.
    const deadline = Date.now() + 10_000;
    while (!(await storage.metadata.getBlobLink('hub/team/big', big.digest))) {
      if (Date.now() > deadline) throw new Error('the filled blob was never linked into hub/team/big');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const head = await fetch(`${urls[1] ?? ''}/v2/hub/team/big/blobs/${big.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(big.data.length));
    assert.equal(blobGets.length, 1);
  });

  it('asks the upstream once for a tag not cached yet, however many clients on both processes pull it', async () => {
    const { manifest } = await new RegistryClient(upstream.url).pushImage('team/tagged', 'v1', [1000]);
    manifestRequests.length = 0;
    const pulls = Array.from({ length: 40 }, async (_, i) => {
      const res = await fetch(`${urls[i % 2] ?? ''}/v2/hub/team/tagged/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.status, 200);
      return res.headers.get('docker-content-digest');
    });
    assert.deepEqual(new Set(await Promise.all(pulls)), new Set([manifest.digest]));
    assert.deepEqual(manifestRequests.sort(), [`GET /v2/_r/team%2Ftagged/manifests/${manifest.digest}`, 'HEAD /v2/_r/team%2Ftagged/manifests/v1']);
    // By digest, cold: one fetch too.
    const other = await new RegistryClient(upstream.url).pushImage('team/tagged', 'v2', [1000]);
    manifestRequests.length = 0;
    const byDigest = Array.from({ length: 40 }, async (_, i) => {
      const res = await fetch(`${urls[i % 2] ?? ''}/v2/hub/team/tagged/manifests/${other.manifest.digest}`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    });
    await Promise.all(byDigest);
    assert.deepEqual(manifestRequests, [`GET /v2/_r/team%2Ftagged/manifests/${other.manifest.digest}`]);
  });

  it('counts one fill started and committed, every other request joined, in the metrics of both processes', async () => {
    // The fill ends (lease released, in-flight gauge down) just after its last follower's bytes.
    let totals = await fillTotals(registries);
    for (let polls = 0; totals.inFlight !== 0 && polls < 2000; polls++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      totals = await fillTotals(registries);
    }
    assert.deepEqual(totals, {
      started: 1,
      resumed: 0,
      committed: 1,
      failed: 0,
      requestsStarted: 1,
      // The 19 others joined this process's fill, the other's, or (late) found the blob stored.
      requestsJoined: 19,
      fetchedBytes: big.data.length,
      inFlight: 0,
      spoolBytes: 0,
    });
  });
});

/** The fill metrics of several processes, summed. */
async function fillTotals(registries: Registry[]): Promise<Record<string, number>> {
  const totals = { started: 0, resumed: 0, committed: 0, failed: 0, requestsStarted: 0, requestsJoined: 0, fetchedBytes: 0, inFlight: 0, spoolBytes: 0 };
  for (const registry of registries) {
    for (const metric of await registry.getMetricsAsJSON()) {
      for (const { labels, value } of metric.values) {
        if (metric.name === 'berth_proxy_fills_started_total') totals[labels['how'] === 'fresh' ? 'started' : 'resumed'] += value;
        else if (metric.name === 'berth_proxy_fills_finished_total') {
          if (labels['outcome'] === 'committed') totals.committed += value;
          else totals.failed += value;
        } else if (metric.name === 'berth_proxy_fill_requests_total') totals[labels['from'] === 'started' ? 'requestsStarted' : 'requestsJoined'] += value;
        else if (metric.name === 'berth_proxy_fill_fetched_bytes_total') totals.fetchedBytes += value;
        else if (metric.name === 'berth_proxy_fills_in_flight') totals.inFlight += value;
        else if (metric.name === 'berth_proxy_fill_spool_bytes') totals.spoolBytes += value;
      }
    }
  }
  return totals;
}
