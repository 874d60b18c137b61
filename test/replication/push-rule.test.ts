import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../server/app.js';
import { parseConfig } from '../../server/config.js';
import type { ReplicationObservation } from '../../server/registry/replication/service.js';
import { assembleStorageStack, type StorageStack } from '../../server/storage-stack.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { blob, OCI_INDEX, OCI_MANIFEST, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { ObservationLog, startInterposer, type Interposer } from './helpers.js';

/**
 * A push rule between two Berths over HTTP: A (two processes over one storage and metadata store, as
 * one deployment) replicates team/** to B under mirror/, triggered by A's event stream and repaired
 * by reconcile passes.
 */
describe('replication: a push rule from A (two processes) to B', () => {
  let b: TestRegistry;
  let proxy: Interposer;
  /** Off: the proxy in front of B answers 503, as a registry down behind a balancer. */
  let up = true;
  let dir: string;
  let storage: StorageStack;
  const apps: FastifyInstance[] = [];
  let clientA: RegistryClient;
  let clientB: RegistryClient;
  const log = new ObservationLog();
  const observations = log.all;
  const seen = (match: (o: ReplicationObservation) => boolean) => log.seen(match);

  function tagSynced(repo: string, tag: string, digest: string) {
    return (o: ReplicationObservation) =>
      o.kind === 'tag' && o.via === 'event' && o.result.sourceRepository === repo && o.result.tag === tag && o.result.digest === digest;
  }

  async function digestOn(client: RegistryClient, repo: string, reference: string): Promise<string | undefined> {
    const res = await client.fetch(`/v2/${repo}/manifests/${reference}`, { method: 'HEAD', headers: { Accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } });
    return res.status === 200 ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
  }

  before(async () => {
    b = await startTestRegistry();
    proxy = await startInterposer(b.url, (req, res) => {
      if (up) return { handled: false };
      req.resume();
      res.writeHead(503, { 'Content-Type': 'text/plain' }).end('down for the test');
      return { handled: true };
    });
    dir = await mkdtemp(join(tmpdir(), 'berth-repl-'));
    const config = parseConfig({
      dataDir: dir,
      log: { level: 'silent' },
      events: { pollIntervalMs: 20 },
      replication: {
        registries: [{ name: 'b', urls: [proxy.url], timeoutSeconds: 5 }],
        rules: [{ name: 'to-b', direction: 'push', registry: 'b', repositories: ['team/**'], destination: { addPrefix: 'mirror' }, reconcileSeconds: 0 }],
      },
    });
    storage = assembleStorageStack({ driver: new MemoryDriver(), metadata: new EmbeddedStore({ path: join(dir, 'metadata') }) });
    for (let i = 0; i < 2; i++) {
      const app = await buildApp({
        config,
        storage,
        onReplication: log.record,
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      apps.push(app);
    }
    const address = apps[0]?.server.address() as AddressInfo;
    clientA = new RegistryClient(`http://127.0.0.1:${address.port}`);
    clientB = new RegistryClient(b.url);
  });
  after(async () => {
    for (const app of apps) await app.close();
    await storage?.close();
    await proxy?.close();
    await b?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('copies an image and its signature to B with the same digests, triggered by the push', async () => {
    const { manifest } = await clientA.pushImage('team/app', 'v1', [5000, 20_000]);
    await seen(tagSynced('team/app', 'v1', manifest.digest));
    assert.equal(await digestOn(clientB, 'mirror/team/app', 'v1'), manifest.digest);
    const empty = blob('{}');
    await clientA.pushBlob('team/app', empty);
    const sig: Blob = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.signature',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: 2 }],
        subject: { mediaType: OCI_MANIFEST, digest: manifest.digest, size: manifest.data.length },
      }),
    );
    await clientA.pushManifest('team/app', sig.digest, sig);
    // The untagged referrer follows its subject, already on B.
    for (let i = 0; i < 500 && !(await digestOn(clientB, 'mirror/team/app', sig.digest)); i++) await new Promise((r) => setTimeout(r, 20));
    const referrers = (await (await clientB.fetch(`/v2/mirror/team/app/referrers/${manifest.digest}`)).json()) as { manifests: { digest: string }[] };
    assert.deepEqual(
      referrers.manifests.map((m) => m.digest),
      [sig.digest],
    );
  });

  it('moves a tag on B when it moves on A', async () => {
    const { manifest } = await clientA.pushImage('team/app', 'v1', [7000]);
    await seen(tagSynced('team/app', 'v1', manifest.digest));
    assert.equal(await digestOn(clientB, 'mirror/team/app', 'v1'), manifest.digest);
  });

  it('catches up on the next reconcile what was pushed while B was down, and one process runs it', async () => {
    up = false;
    const { manifest } = await clientA.pushImage('team/late', 'v1', [3000]);
    await seen((o) => o.kind === 'failure' && o.via === 'event' && o.repository === 'team/late');
    up = true;
    const runsBefore = observations.filter((o) => o.kind === 'run').length;
    // Both processes asked at once: the lease lets one pass run.
    await Promise.all(apps.map((app) => app.replication.service.runNow('to-b')));
    const runs = observations.filter((o) => o.kind === 'run').slice(runsBefore);
    assert.equal(runs.length, 1, 'one pass for the two processes');
    assert.equal(await digestOn(clientB, 'mirror/team/late', 'v1'), manifest.digest);
    const status = await apps[1]?.replication.service.status('to-b');
    assert.equal(status?.state.lastRun?.result, 'ok');
    assert.ok((status?.artifacts.synced ?? 0) >= 2, JSON.stringify(status?.artifacts));
  });

  it("keeps B's copy of a tag deleted on A (deletes are off by default)", async () => {
    const { manifest } = await clientA.pushImage('team/gone', 'v1', [1000]);
    await seen(tagSynced('team/gone', 'v1', manifest.digest));
    assert.equal((await clientA.fetch(`/v2/team/gone/manifests/${manifest.digest}`, { method: 'DELETE' })).status, 202);
    await Promise.all(apps.map((app) => app.replication.service.runNow('to-b')));
    assert.equal(await digestOn(clientB, 'mirror/team/gone', 'v1'), manifest.digest);
  });
});
