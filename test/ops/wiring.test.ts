import assert from 'node:assert/strict';
import { EventEmitter, on } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../server/app.js';
import { AuditLog, MemoryAuditSink } from '../../server/operations/audit.js';
import { parseConfig, type BerthConfigInput } from '../../server/config.js';
import { Metrics } from '../../server/operations/metrics.js';
import { createOperations, type Operations } from '../../server/operations/operations.js';
import type { GcEvent } from '../../server/registry/gc/background.js';
import { assembleStorageStack } from '../../server/storage-stack.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { blobKey } from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { randomBlob, RegistryClient } from '../helpers/oci.js';
import { makeSelfSignedCert } from '../helpers/tls-cert.js';

const scratch = mkdtempSync(join(tmpdir(), 'berth-wiring-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface Running {
  app: FastifyInstance;
  ops: Operations;
  url: string;
  sink: MemoryAuditSink;
  log: Record<string, unknown>[];
  /** Every event the app gave ops.onGc, in order; `gcEvents` emits 'gc' after each is recorded. */
  gcLog: GcEvent[];
  gcEvents: EventEmitter;
  stop(): Promise<void>;
}

/** What main.ts does, with the audit and log captured. */
async function start(name: string, input: BerthConfigInput, driver: BlobDriver = new MemoryDriver()): Promise<Running> {
  const config = parseConfig({ dataDir: join(scratch, name), ...input });
  const sink = new MemoryAuditSink();
  const log: Record<string, unknown>[] = [];
  const metrics = new Metrics({ processMetrics: false });
  const storage = assembleStorageStack(
    { driver, metadata: new EmbeddedStore({ path: join(scratch, name, 'metadata') }) },
    { storage: metrics.observeStorage, metadata: metrics.observeMetadata },
  );
  const ops = createOperations({
    config,
    storage,
    audit: new AuditLog(sink),
    metrics,
    logDestination: { write: (line) => void log.push(JSON.parse(line) as Record<string, unknown>) },
  });
  await ops.assertReady();
  const gcLog: GcEvent[] = [];
  const gcEvents = new EventEmitter();
  const app = await buildApp({
    config,
    storage: ops.storage,
    server: ops.serverOptions,
    plugins: (a) => ops.plugins(a),
    onEvent: (event) => ops.onEvent(event),
    onUploadActive: (delta) => ops.onUploadActive(delta),
    onIntegrity: (event) => ops.onIntegrity(event),
    onGc: (event) => {
      ops.onGc(event);
      gcLog.push(event);
      gcEvents.emit('gc', event);
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  await ops.started(app);
  const address = app.server.address();
  assert.ok(address && typeof address === 'object');
  const scheme = config.http.tls ? 'https' : 'http';
  return {
    app,
    ops,
    sink,
    log,
    gcLog,
    gcEvents,
    url: `${scheme}://127.0.0.1:${address.port}`,
    async stop() {
      ops.beginDrain();
      await app.close();
      await ops.storage.close();
      await ops.close();
    },
  };
}

async function until<T>(probe: () => T | undefined | false, timeoutMs = 2000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) assert.fail('condition not met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('ops wired into the registry app', () => {
  let r: Running;
  before(async () => {
    r = await start('plain', { log: { level: 'info' } });
  });
  after(() => r.stop());

  it('audits and counts a push and a pull, with the route templates as metric labels', async () => {
    const client = new RegistryClient(r.url, { 'x-request-id': 'push-1' });
    const { manifest } = await client.pushImage('team/app', 'v1');
    const pulled = await new RegistryClient(r.url).fetch('/v2/team/app/manifests/v1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(pulled.status, 200);
    await pulled.arrayBuffer();

    const events = r.sink.events;
    const push = events.find((e) => e.action === 'push');
    assert.ok(push, JSON.stringify(events));
    assert.equal(push.repository, 'team/app');
    assert.equal(push.digest, manifest.digest);
    assert.equal(push.tag, 'v1');
    assert.equal(push.actor, 'anonymous');
    assert.equal(push.clientAddress, '127.0.0.1');
    assert.equal(push.requestId, 'push-1');
    assert.ok(events.some((e) => e.action === 'pull' && e.digest === manifest.digest));
    assert.equal(events.filter((e) => e.action === 'blob_push').length, 2);

    // Events are recorded by the handlers, before the response is sent.
    const text = await r.ops.metrics.exposition();
    assert.match(text, /^berth_pushes_total\{repository="team\/app"\} 1$/m);
    assert.match(text, /^berth_pulls_total\{repository="team\/app"\} 1$/m);
    assert.match(text, /^berth_storage_operation_duration_seconds_count\{driver="memory",op="[a-z.]+"\} \d+$/m);
    assert.match(text, /^berth_metadata_operation_duration_seconds_count\{store="[^"]+",op="putManifest"\} 1$/m);
  });

  it('counts and logs a corrupt blob found by a read, naming its digest and storage key', async () => {
    const client = new RegistryClient(r.url);
    const layer = randomBlob(300_000);
    await client.pushBlob('team/corrupt', layer);
    const key = blobKey(parseDigest(layer.digest));
    const bytes = await r.ops.storage.driver.get(key);
    bytes[1000] = (bytes[1000] ?? 0) ^ 0xff;
    await r.ops.storage.driver.put(key, bytes);
    const res = await client.fetch(`/v2/team/corrupt/blobs/${layer.digest}`);
    await res.arrayBuffer().catch(() => undefined);

    const text = await r.ops.metrics.exposition();
    assert.match(text, /^berth_storage_integrity_failures_total\{kind="blob",reason="digest_mismatch",found_by="read"\} 1$/m);
    const line = r.log.find((l) => l.reason === 'digest_mismatch');
    assert.ok(line, 'no log line for the corrupt blob');
    assert.equal(line.level, 'warn');
    assert.equal(line.digest, layer.digest);
    assert.equal(line.key, key);
    assert.match(String(line.quarantineKey), /^quarantine\/sha256\//);
  });

  it('serves /metrics, /healthz and /readyz next to /v2/', async () => {
    // The API's path, not the internal rewrite the routes are registered under (/v2/_r/:name/…).
    const putManifest = /berth_http_request_duration_seconds_count\{route="\/v2\/:name\/manifests\/:reference",method="PUT",status="201"\} 1/;
    // Request metrics are recorded when the server finishes the response, possibly after the client has it.
    let metrics = '';
    const deadline = Date.now() + 2000;
    while (!putManifest.test(metrics) && Date.now() < deadline) metrics = await (await fetch(`${r.url}/metrics`)).text();
    assert.match(metrics, putManifest);
    assert.ok(!/route="\/v2\/team/.test(metrics), 'labels are templates, not request paths');
    assert.deepEqual(await (await fetch(`${r.url}/healthz`)).json(), { status: 'ok' });
    const ready = await fetch(`${r.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(Object.keys(((await ready.json()) as { checks: object }).checks).sort(), ['metadata', 'storage']);
  });

  it('logs one access line per request with its request id', async () => {
    const res = await fetch(`${r.url}/v2/`, { headers: { 'x-request-id': 'base-check' } });
    assert.equal(res.headers.get('x-request-id'), 'base-check');
    await res.arrayBuffer();
    const lines = await until(() => {
      const own = r.log.filter((l) => l.requestId === 'base-check');
      return own.length > 0 && own;
    });
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.msg, 'request');
    assert.equal(lines[0]!.url, '/v2/');
    assert.equal(lines[0]!.status, 200);
  });
});

describe('ops with a separate metrics port and TLS', () => {
  it('serves HTTPS, moves /metrics to its own token-protected port, and reloads certificates on SIGHUP', async () => {
    const { certFile, keyFile } = makeSelfSignedCert(scratch, 'tls');
    const r = await start('tls', {
      http: { host: '127.0.0.1', tls: { certFile, keyFile } },
      metrics: { port: 0, token: 'scrape-me' },
      log: { level: 'warn' },
    });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${r.url}/v2/`, { ca: readFileSync(certFile) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 200);
      assert.equal(process.listenerCount('SIGHUP'), 1, 'reload on SIGHUP is armed');
      const metricsPort = r.ops.metricsPort();
      assert.ok(metricsPort);
      assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status, 401);
      const baseCounted = /^berth_http_request_duration_seconds_count\{route="\/v2\/",method="GET",status="200"\} 1$/m;
      let scraped = '';
      const deadline = Date.now() + 2000;
      while (!baseCounted.test(scraped) && Date.now() < deadline) {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { headers: { authorization: 'Bearer scrape-me' } });
        assert.equal(res.status, 200);
        scraped = await res.text();
      }
      assert.match(scraped, baseCounted);
    } finally {
      await r.stop();
    }
    assert.equal(process.listenerCount('SIGHUP'), 0, 'and disarmed on close');
  });
});

/** One sample of the text exposition, by its exact series (name and labels as printed). */
function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Waits (bounded) for background GC events until `done` holds for all of them so far. */
async function gcUntil(r: Running, done: (events: GcEvent[]) => boolean, timeoutMs = 10_000): Promise<void> {
  if (done(r.gcLog)) return;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    for await (const _event of on(r.gcEvents, 'gc', { signal })) if (done(r.gcLog)) return;
  } catch (err) {
    if (signal.aborted) assert.fail(`background GC did not get there within ${timeoutMs} ms: ${JSON.stringify(r.gcLog)}`);
    throw err;
  }
}

function okPasses(events: GcEvent[]) {
  return events.flatMap((e) => (e.kind === 'pass' && e.result === 'ok' ? [e.summary] : []));
}

describe('background garbage collection wired to metrics and audit', () => {
  const eager = { intervalSeconds: 1, delaySeconds: 0, quarantineSeconds: 0, deleteUntagged: true, untaggedAgeSeconds: 0 };

  it('counts the passes and what they deleted and freed, and audits each manifest deleted and each pass that deleted anything', async () => {
    const r = await start('gc-passes', { log: { level: 'warn' }, gc: eager });
    try {
      const client = new RegistryClient(r.url);
      const old = await client.pushImage('gc/app', 'v1', [2000]);
      // The tag moves on: the old manifest is untagged, its config and layer unreferenced with it.
      await client.pushImage('gc/app', 'v1', [1000]);
      const gone = [old.manifest, old.config, ...old.layers];
      await gcUntil(r, (events) => okPasses(events).reduce((n, s) => n + s.blobsDeleted, 0) >= gone.length);

      const passes = okPasses(r.gcLog);
      const text = await r.ops.metrics.exposition();
      assert.ok((metric(text, 'berth_gc_passes_total{result="ok"}') ?? 0) >= passes.length, text);
      assert.equal(metric(text, 'berth_gc_passes_total{result="refused"}'), 0);
      assert.ok((metric(text, 'berth_gc_manifests_deleted_total') ?? 0) >= 1);
      assert.ok((metric(text, 'berth_gc_blobs_deleted_total') ?? 0) >= gone.length);
      assert.ok((metric(text, 'berth_gc_blobs_quarantined_total') ?? 0) >= gone.length, 'with no quarantine time, each goes through it at once');
      const goneBytes = gone.reduce((n, b) => n + b.size, 0);
      assert.ok((metric(text, 'berth_gc_bytes_freed_total') ?? 0) >= goneBytes, `at least ${goneBytes} bytes freed\n${text}`);
      assert.ok((metric(text, 'berth_gc_links_removed_total') ?? 0) >= 1);
      assert.equal(metric(text, 'berth_gc_errors_total'), 0);
      assert.ok((metric(text, 'berth_gc_pass_duration_seconds_count') ?? 0) >= passes.length);
      const last = metric(text, 'berth_gc_last_pass_timestamp_seconds') ?? 0;
      assert.ok(Math.abs(last - Date.now() / 1000) < 60, `last pass at ${last}`);
      assert.match(text, /^berth_gc_queue_items\{state="queued"\} \d+$/m);
      assert.match(text, /^berth_gc_queue_items\{state="due"\} \d+$/m);

      const deleted = r.sink.events.filter((e) => e.action === 'gc_manifest_deleted');
      assert.deepEqual(
        deleted.map((e) => [e.repository, e.digest, e.reason, e.actor, e.actorKind]),
        [['gc/app', old.manifest.digest, 'untagged', 'gc', 'system']],
      );
      const passLines = r.sink.events.filter((e) => e.action === 'gc_pass');
      assert.ok(passLines.length >= 1 && passLines.length <= passes.length, JSON.stringify(passLines));
      assert.ok(passLines.reduce((n, e) => n + (e.gc?.blobsDeleted ?? 0), 0) >= gone.length);
      assert.ok(passLines.every((e) => e.actorKind === 'system' && e.gc !== undefined && e.gc.bytesFreed >= 0));
      assert.equal(r.sink.events.filter((e) => String(e.action).startsWith('gc_blob')).length, 0, 'no line per blob');
    } finally {
      await r.stop();
    }
  });

  it('counts a refused pass, and leaves the last-pass time unset', async () => {
    // Storage holds a blob the brand-new metadata store knows nothing about: the store is not complete.
    const driver = new MemoryDriver();
    const stray = randomBlob(100);
    await driver.put(blobKey(parseDigest(stray.digest)), stray.data);
    const r = await start('gc-refused', { log: { level: 'warn' }, gc: eager }, driver);
    try {
      await gcUntil(r, (events) => events.some((e) => e.kind === 'pass' && e.result === 'refused'));
      const text = await r.ops.metrics.exposition();
      assert.ok((metric(text, 'berth_gc_passes_total{result="refused"}') ?? 0) >= 1, text);
      assert.equal(metric(text, 'berth_gc_passes_total{result="ok"}'), 0);
      assert.equal(metric(text, 'berth_gc_last_pass_timestamp_seconds'), 0);
      assert.equal(metric(text, 'berth_gc_blobs_deleted_total'), 0);
      assert.ok(r.log.some((l) => l.level === 'warn' && /garbage collection refused/.test(String(l.msg))));
      assert.ok(await r.ops.storage.driver.stat(blobKey(parseDigest(stray.digest))));
    } finally {
      await r.stop();
    }
  });

  it('reads the queue from the metadata store at each scrape', async () => {
    const r = await start('gc-queue', { gc: { enabled: false } });
    const now = Date.now();
    const digest = (n: number) => `sha256:${String(n).padStart(64, '0')}`;
    try {
      await r.ops.storage.metadata.gc.enqueue([
        { kind: 'blob', digest: digest(1), due: now - 1000 },
        { kind: 'blob', digest: digest(2), due: now + 3_600_000 },
      ]);
      let text = await r.ops.metrics.exposition();
      assert.equal(metric(text, 'berth_gc_queue_items{state="queued"}'), 2);
      assert.equal(metric(text, 'berth_gc_queue_items{state="due"}'), 1);
      await r.ops.storage.metadata.gc.enqueue([{ kind: 'manifest', repo: 'team/app', digest: digest(3), due: now - 1000 }]);
      text = await r.ops.metrics.exposition();
      assert.equal(metric(text, 'berth_gc_queue_items{state="queued"}'), 3);
      assert.equal(metric(text, 'berth_gc_queue_items{state="due"}'), 2);
    } finally {
      await r.stop();
    }
    // With the store closed the size is unknown: left out, not reported stale.
    const text = await r.ops.metrics.exposition();
    assert.equal(metric(text, 'berth_gc_queue_items{state="queued"}'), undefined, text);
  });
});
