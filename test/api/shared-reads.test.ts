// Hot blobs: concurrent full GETs of one blob in a process share one storage read (server/registry/
// shared-reads.ts), on real S3 (s3rver) and the filesystem, over real HTTP.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { BerthConfigInput } from '../../server/config.js';
import { blobKey } from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import { randomBlob, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

const MiB = 1024 * 1024;
const DEADLINE_MS = 60_000;

interface Fetched {
  status: number;
  /** The body ended cleanly with every byte of Content-Length. */
  complete: boolean;
  bytes: number;
  digest: string;
}

/** The driver's reads held at `holdAt` bytes until `release()`: so that clients provably arrive during the read. */
interface Gate {
  release(): void;
  /** Bytes the held reads have passed on. */
  passed(): number;
}

function gateReads(driver: BlobDriver, holdAt: number): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  let passed = 0;
  const inner = driver.reader.bind(driver);
  driver.reader = async (key, options) => {
    const source = await inner(key, options);
    let seen = 0;
    const gate = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        const go = () => {
          seen += chunk.length;
          passed += chunk.length;
          callback(null, chunk);
        };
        if (seen + chunk.length <= holdAt) go();
        else void opened.then(go);
      },
    });
    source.on('error', (err) => gate.destroy(err));
    return source.pipe(gate);
  };
  return { release: () => open(), passed: () => passed };
}

const agent = new Agent({ keepAlive: false, maxSockets: Infinity });

interface FetchOptions {
  onResponse?: (res: Readable) => void;
  /** Keep-alive, as docker and curl use it: a body cut short without closing the connection hangs such a client. */
  keepAlive?: boolean;
  /** A response idle this long is a hang: the promise rejects. */
  idleMs?: number;
}

const keepAliveAgent = new Agent({ keepAlive: true, maxSockets: Infinity });

/** A GET hashed as it streams (no body kept). */
function fetchBlob(url: string, options: FetchOptions = {}): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: options.keepAlive ? keepAliveAgent : agent }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let settled = false;
      const done = (complete: boolean) => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, complete, bytes, digest: `sha256:${hash.digest('hex')}` });
      };
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.on('end', () => done(res.complete));
      res.on('aborted', () => done(false));
      res.on('error', () => done(false));
      res.on('close', () => done(res.complete));
      options.onResponse?.(res);
    });
    const idleMs = options.idleMs ?? DEADLINE_MS;
    req.setTimeout(idleMs, () => {
      reject(new Error(`response idle for ${idleMs} ms: a hang`));
      req.destroy();
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Counted {
  reg: TestRegistry;
  client: RegistryClient;
  reads: () => number;
  joins: () => number;
  /** `reader` calls that reached the driver (the instrumented layer's count). */
  driverReaders: () => number;
  close(): Promise<void>;
}

async function start(driver: (dir: string) => Promise<BlobDriver>, config: BerthConfigInput): Promise<Counted> {
  let reads = 0;
  let joins = 0;
  let driverReaders = 0;
  const reg = await startTestRegistry({
    driver,
    config,
    observers: { storage: (op) => void (op.op === 'reader' && driverReaders++) },
    deps: { onBlobRead: (event) => void (event === 'storage_read' ? reads++ : joins++) },
  });
  return {
    reg,
    client: new RegistryClient(reg.url),
    reads: () => reads,
    joins: () => joins,
    driverReaders: () => driverReaders,
    close: () => reg.close(),
  };
}

describe('shared reads: S3 (s3rver)', () => {
  let s3: S3rverHandle;
  let spool: ScratchDir;

  before(async () => {
    s3 = await startS3rver();
    spool = await makeScratchDir('spool');
  });
  after(async () => {
    agent.destroy();
    keepAliveAgent.destroy();
    await s3.stop();
    await spool.remove();
  });

  async function startS3(config: BerthConfigInput['storage'] = {}): Promise<Counted & { gate: (holdAt: number) => Gate; driver: BlobDriver }> {
    let bare: BlobDriver | undefined;
    const counted = await start(
      async () => {
        bare = createS3Driver(s3.config({ prefix: `shared-${randomBytes(4).toString('hex')}` }));
        return bare;
      },
      // The config names s3 so the default (shared on for s3) is what these tests exercise.
      { storage: { driver: 's3', s3: s3.config(), sharedReads: { spoolDir: spool.path }, ...config } },
    );
    const driver = bare!;
    return { ...counted, driver, gate: (holdAt) => gateReads(driver, holdAt) };
  }

  it('200 concurrent GETs of an 8 MiB blob cause one storage read, and every body verifies', async () => {
    const r = await startS3();
    try {
      // 8 MiB, not 32: 200 × 32 MiB through one test process takes over a minute on a loaded CI box.
      const layer = randomBlob(8 * MiB);
      await r.client.pushBlob('hot/app', layer);
      const gate = r.gate(4 * MiB);
      const url = `${r.reg.url}/v2/hot/app/blobs/${layer.digest}`;
      let peak = 0;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 20);
      const baseline = process.memoryUsage().arrayBuffers;
      const all = Array.from({ length: 200 }, () => fetchBlob(url));
      // Every GET but the first joins the read the first one opened, held at 4 MiB until they all have.
      await until('199 joins', () => r.joins() === 199);
      gate.release();
      const results = await Promise.all(all);
      clearInterval(sampler);
      for (const res of results) assert.deepEqual(res, { status: 200, complete: true, bytes: layer.data.length, digest: layer.digest });
      assert.equal(r.reads(), 1);
      assert.equal(r.driverReaders(), 1);
      // 200 × 8 MiB went out; what the process held at once is a small multiple of the blob, not 200 of it.
      assert.ok(peak - baseline < 256 * MiB, `array buffers grew by ${Math.round((peak - baseline) / MiB)} MiB`);
      await until('spool emptied', async () => (await readdir(spool.path)).length === 0);
    } finally {
      await r.close();
    }
  });

  it('a client that comes after bytes were read gets them from the spool, then follows live', async () => {
    const r = await startS3();
    try {
      const layer = randomBlob(8 * MiB);
      await r.client.pushBlob('hot/late', layer);
      const gate = r.gate(5 * MiB);
      const url = `${r.reg.url}/v2/hot/late/blobs/${layer.digest}`;
      let firstGot = 0;
      const first = fetchBlob(url, { onResponse: (res) => res.on('data', (c: Buffer) => (firstGot += c.length)) });
      // The guard holds one chunk back, so the first client has nearly all of the held 5 MiB.
      await until('the first client to have 4 MiB', () => firstGot >= 4 * MiB);
      const late = fetchBlob(url);
      await until('the late client to join', () => r.joins() === 1);
      gate.release();
      for (const res of await Promise.all([first, late]))
        assert.deepEqual(res, { status: 200, complete: true, bytes: layer.data.length, digest: layer.digest });
      assert.equal(r.reads(), 1);
    } finally {
      await r.close();
    }
  });

  it('a paused client does not stall the others', async () => {
    const r = await startS3();
    try {
      const layer = randomBlob(16 * MiB);
      await r.client.pushBlob('hot/slow', layer);
      const gate = r.gate(MiB);
      const url = `${r.reg.url}/v2/hot/slow/blobs/${layer.digest}`;
      let paused: Readable | undefined;
      const slow = fetchBlob(url, {
        onResponse: (res) => {
          res.pause();
          paused = res;
        },
      });
      const others = Array.from({ length: 10 }, () => fetchBlob(url));
      await until('10 joins', () => r.joins() === 10);
      gate.release();
      // The others finish while the slow one has not read a byte of its body.
      for (const res of await Promise.all(others)) assert.deepEqual(res, { status: 200, complete: true, bytes: layer.data.length, digest: layer.digest });
      assert.ok(paused);
      paused.resume();
      assert.deepEqual(await slow, { status: 200, complete: true, bytes: layer.data.length, digest: layer.digest });
      assert.equal(r.reads(), 1);
    } finally {
      await r.close();
    }
  });

  it('a corrupt object cuts every client sharing the read and is quarantined once', async () => {
    const r = await startS3({ verifyReads: 'always' });
    try {
      const layer = randomBlob(4 * MiB);
      await r.client.pushBlob('hot/bad', layer);
      const bad = Buffer.from(layer.data);
      bad[bad.length - 10] = (bad[bad.length - 10] ?? 0) ^ 0x01;
      await r.driver.put(blobKey(parseDigest(layer.digest)), bad);
      const gate = r.gate(MiB);
      const url = `${r.reg.url}/v2/hot/bad/blobs/${layer.digest}`;
      const all = Array.from({ length: 20 }, () => fetchBlob(url, { keepAlive: true, idleMs: 10_000 }));
      await until('19 joins', () => r.joins() === 19);
      gate.release();
      const results = await Promise.all(all);
      for (const res of results) {
        assert.equal(res.complete && res.status === 200, false, 'a client got a clean end of corrupt bytes');
        assert.notEqual(res.digest, layer.digest);
      }
      assert.equal(r.reads(), 1);
      const quarantined: string[] = [];
      for await (const key of r.driver.list('quarantine')) quarantined.push(key);
      assert.equal(quarantined.length, 1);
      // Quarantined and marked missing: the next GET is a clean 404.
      assert.equal((await fetchBlob(url)).status, 404);
    } finally {
      await r.close();
    }
  });

  it('clients that all leave stop the read and the spool file is removed', async () => {
    const r = await startS3();
    try {
      const layer = randomBlob(8 * MiB);
      await r.client.pushBlob('hot/left', layer);
      const gate = r.gate(MiB);
      const url = `${r.reg.url}/v2/hot/left/blobs/${layer.digest}`;
      const responses: Readable[] = [];
      const all = Array.from({ length: 5 }, () => fetchBlob(url, { onResponse: (res) => responses.push(res) }));
      await until('4 joins and 5 responses', () => r.joins() === 4 && responses.length === 5);
      assert.equal((await readdir(spool.path)).length, 1);
      for (const res of responses) res.destroy();
      for (const res of await Promise.all(all)) assert.equal(res.complete, false);
      await until('spool emptied', async () => (await readdir(spool.path)).length === 0);
      gate.release();
      // Nothing of the abandoned read lingers: the next GET reads afresh and gets every byte.
      assert.deepEqual(await fetchBlob(url), { status: 200, complete: true, bytes: layer.data.length, digest: layer.digest });
      assert.equal(r.reads(), 2);
    } finally {
      await r.close();
    }
  });

  it('ranged GETs and blobs under minBytes read storage per request', async () => {
    const r = await startS3();
    try {
      const small = randomBlob(512 * 1024);
      const big = randomBlob(2 * MiB);
      await r.client.pushBlob('hot/each', small);
      await r.client.pushBlob('hot/each', big);
      await Promise.all(Array.from({ length: 5 }, () => fetchBlob(`${r.reg.url}/v2/hot/each/blobs/${small.digest}`)));
      const ranged = await Promise.all(
        Array.from({ length: 5 }, () => r.client.fetch(`/v2/hot/each/blobs/${big.digest}`, { headers: { Range: 'bytes=0-99' } }).then((res) => res.status)),
      );
      assert.deepEqual(ranged, [206, 206, 206, 206, 206]);
      assert.equal(r.joins(), 0);
      assert.equal(r.reads(), 10);
    } finally {
      await r.close();
    }
  });

  it('with sharedReads.enabled false every GET reads storage', async () => {
    const r = await startS3({ sharedReads: { enabled: false, spoolDir: spool.path } });
    try {
      const layer = randomBlob(2 * MiB);
      await r.client.pushBlob('hot/off', layer);
      const results = await Promise.all(Array.from({ length: 5 }, () => fetchBlob(`${r.reg.url}/v2/hot/off/blobs/${layer.digest}`)));
      for (const res of results) assert.equal(res.digest, layer.digest);
      assert.equal(r.joins(), 0);
      assert.equal(r.reads(), 5);
    } finally {
      await r.close();
    }
  });
});

describe('shared reads: filesystem', () => {
  let spool: ScratchDir;
  before(async () => {
    spool = await makeScratchDir('spool');
  });
  after(async () => {
    await spool.remove();
  });

  async function startFs(config: BerthConfigInput['storage']): Promise<Counted & { gate: (holdAt: number) => Gate }> {
    let bare: BlobDriver | undefined;
    const counted = await start(
      async (dir) => {
        bare = new FilesystemDriver({ root: join(dir, 'storage') });
        return bare;
      },
      { storage: config },
    );
    const driver = bare!;
    return { ...counted, gate: (holdAt) => gateReads(driver, holdAt) };
  }

  it('off by default: each GET is its own read (sendfile)', async () => {
    const r = await startFs({});
    try {
      const layer = randomBlob(2 * MiB);
      await r.client.pushBlob('fs/default', layer);
      const results = await Promise.all(Array.from({ length: 5 }, () => fetchBlob(`${r.reg.url}/v2/fs/default/blobs/${layer.digest}`)));
      for (const res of results) assert.equal(res.digest, layer.digest);
      assert.equal(r.reads(), 5);
      assert.equal(r.joins(), 0);
    } finally {
      await r.close();
    }
  });

  it('switched on: 50 concurrent GETs share one read', async () => {
    const r = await startFs({ sharedReads: { enabled: true, spoolDir: spool.path } });
    try {
      const layer: Blob = randomBlob(8 * MiB);
      await r.client.pushBlob('fs/on', layer);
      const gate = r.gate(MiB);
      const all = Array.from({ length: 50 }, () => fetchBlob(`${r.reg.url}/v2/fs/on/blobs/${layer.digest}`));
      await until('49 joins', () => r.joins() === 49);
      gate.release();
      for (const res of await Promise.all(all)) assert.deepEqual(res, { status: 200, complete: true, bytes: layer.data.length, digest: layer.digest });
      assert.equal(r.reads(), 1);
    } finally {
      await r.close();
    }
  });
});
