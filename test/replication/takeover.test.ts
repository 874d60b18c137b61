import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../server/app.js';
import { parseConfig } from '../../server/config.js';
import type { ReplicationObservation } from '../../server/registry/replication/service.js';
import type { RunSummary } from '../../server/registry/replication/rule-state.js';
import { assembleStorageStack, type StorageStack } from '../../server/storage-stack.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { OCI_MANIFEST, RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

/** A loopback proxy to `target` that, while `hang` is set, takes requests and never answers them ('held' on each). */
async function hangingProxy(target: string): Promise<{ url: string; hang: boolean; events: EventEmitter; close(): Promise<void> }> {
  const upstream = new URL(target);
  const events = new EventEmitter();
  const sockets = new Set<Socket>();
  const state = { hang: false };
  const server = http.createServer((req, res) => {
    if (state.hang) {
      req.resume();
      events.emit('held', `${req.method} ${req.url}`);
      return;
    }
    const forward = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    events,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
}

/**
 * A pass stuck on a target that never answers is left by its process once it made no progress for
 * runTimeoutSeconds, and another process takes the rule over and finishes it. leaseSeconds and
 * runTimeoutSeconds are at the schema's minimum (1 s); the registry's own timeout (30 s) is far
 * longer, so only the stall detection can end the stuck pass.
 */
describe('replication: a stuck pass taken over by another process', () => {
  let b: TestRegistry;
  let proxy: Awaited<ReturnType<typeof hangingProxy>>;
  let dir: string;
  let storage: StorageStack;
  const apps: FastifyInstance[] = [];
  const runs: { process: number; summary: RunSummary }[] = [];

  before(async () => {
    b = await startTestRegistry();
    proxy = await hangingProxy(b.url);
    dir = await mkdtemp(join(tmpdir(), 'berth-repl-takeover-'));
    const config = parseConfig({
      dataDir: dir,
      log: { level: 'silent' },
      replication: {
        leaseSeconds: 1,
        runTimeoutSeconds: 1,
        registries: [{ name: 'b', urls: [proxy.url], timeoutSeconds: 30 }],
        rules: [{ name: 'to-b', direction: 'push', registry: 'b', repositories: ['team/**'], onPush: false, reconcileSeconds: 0 }],
      },
    });
    storage = assembleStorageStack({ driver: new MemoryDriver(), metadata: new EmbeddedStore({ path: join(dir, 'metadata') }) });
    for (let i = 0; i < 2; i++) {
      const app = await buildApp({
        config,
        storage,
        onReplication: (o: ReplicationObservation) => {
          if (o.kind === 'run') runs.push({ process: i, summary: o.summary });
        },
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      apps.push(app);
    }
  });
  after(async () => {
    for (const app of apps) await app.close();
    await storage?.close();
    await proxy?.close();
    await b?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lets the second process take the rule over and finish once the target answers', async () => {
    const [first, second] = apps as [FastifyInstance, FastifyInstance];
    const address = first.server.address() as AddressInfo;
    const { manifest } = await new RegistryClient(`http://127.0.0.1:${address.port}`).pushImage('team/app', 'v1', [4000]);

    proxy.hang = true;
    const held = once(proxy.events, 'held');
    const stuck = first.replication.service.runNow('to-b');
    await held;
    // Held by the first process: the second one's pass does not start.
    await second.replication.service.runNow('to-b');
    assert.equal(runs.length, 0);
    const during = await second.replication.service.status('to-b');
    assert.ok(during?.state.running, 'the stuck pass shows as running');
    const stuckHolder = during.state.running.holder;

    proxy.hang = false;
    // The second process asks until it gets the rule (bounded: the stall is noticed within about 1.3 s).
    for (let i = 0; i < 200 && !runs.some((r) => r.process === 1); i++) {
      await second.replication.service.runNow('to-b');
      if (!runs.some((r) => r.process === 1)) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await stuck;

    const left = runs.find((r) => r.process === 0);
    assert.equal(left?.summary.result, 'failed');
    assert.equal(left.summary.holder, stuckHolder);
    assert.match(left.summary.lastError ?? '', /made no progress for 1 s/);
    const finished = runs.find((r) => r.process === 1);
    assert.equal(finished?.summary.result, 'ok', finished?.summary.lastError);
    assert.notEqual(finished.summary.holder, stuckHolder);
    assert.equal(finished.summary.tags.copied, 1);

    const status = await first.replication.service.status('to-b');
    assert.equal(status?.state.lastRun?.holder, finished.summary.holder, 'lastRun is the second holder’s');
    assert.equal(status?.state.running, undefined);
    const head = await fetch(`${b.url}/v2/team/app/manifests/v1`, { method: 'HEAD', headers: { Accept: OCI_MANIFEST } });
    assert.equal(head.headers.get('docker-content-digest'), manifest.digest);
  });
});
