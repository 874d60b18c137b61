// Never serve bytes that do not match their digest: corrupt, truncated and missing objects on every
// driver, and `berth scrub`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Integrity, type IntegrityEvent } from '../../server/registry/integrity.js';
import { blobKey, SCRUB_CURSOR_KEY } from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { scrub, ScrubBusyError, type ScrubProgress } from '../../server/registry/scrub.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import type { BerthConfigInput } from '../../server/config.js';
import { blob, imageManifest, randomBlob, RegistryClient, sha256, type Blob } from '../helpers/oci.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { startTestRegistry, type TestRegistry, type TestRegistryOptions } from '../helpers/registry.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';
import { makeScratchDir } from '../helpers/scratch.js';

/** Far longer than any of these responses takes: a response still open then is a hang. */
const CLIENT_TIMEOUT_MS = 30_000;

interface Download {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** True only when the body ended cleanly (all of Content-Length received, 'end' emitted). */
  complete: boolean;
  ms: number;
}

/** A GET the way curl does it, reporting whether the body ended cleanly or the connection was cut. */
function download(url: string, headers: Record<string, string> = {}): Promise<Download> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    // Keep-alive, as curl and docker use it: a server that sends less than Content-Length and leaves
    // the connection open makes such a client wait (with Connection: close the close would end it).
    const agent = new Agent({ keepAlive: true });
    const req = request(url, { agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const done = (complete: boolean) => {
        if (settled) return;
        settled = true;
        req.setTimeout(0);
        agent.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete, ms: performance.now() - started });
      };
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done(res.complete));
      res.on('aborted', () => done(false));
      res.on('error', () => done(false));
      res.on('close', () => done(res.complete));
    });
    req.setTimeout(CLIENT_TIMEOUT_MS, () => {
      req.destroy();
      agent.destroy();
      reject(new Error(`GET ${url} still open after ${CLIENT_TIMEOUT_MS} ms (the server left the connection hanging)`));
    });
    // Cut before the headers went out (the only chunk was the bad one): no response at all, status 0.
    req.on('error', (err) => {
      agent.destroy();
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET')
        resolve({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false, ms: performance.now() - started });
      else reject(err);
    });
    req.end();
  });
}

interface Setup {
  name: string;
  options(): Promise<TestRegistryOptions>;
  /** Overwrites the stored object at `key` in place (a bit flip or truncation on the disk or bucket). */
  overwrite(reg: TestRegistry, key: string, change: (bytes: Buffer) => Buffer): Promise<void>;
}

let s3: S3rverHandle | undefined;
let redis: RedisServer | undefined;
after(async () => {
  await s3?.stop();
  await redis?.stop();
});

const viaDriver: Setup['overwrite'] = async (reg, key, change) => {
  await reg.driver.put(key, change(await reg.driver.get(key)));
};

const SETUPS: Setup[] = [
  {
    name: 'filesystem + embedded',
    options: async () => ({ driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }) }),
    // Straight on the file, as a failing disk would: no rename, same inode.
    overwrite: async (reg, key, change) => {
      const path = join(reg.dir, 'storage', ...key.split('/'));
      const next = change(await readFile(path));
      await truncate(path, 0);
      await writeFile(path, next, { flag: 'r+' });
    },
  },
  { name: 'memory + embedded', options: async () => ({}), overwrite: viaDriver },
  {
    name: 'S3 (s3rver) + Redis',
    options: async () => {
      s3 ??= await startS3rver();
      redis ??= await startRedisServer();
      const server = s3;
      const url = redis.url;
      return {
        driver: async () => createS3Driver(server.config({ prefix: `int-${randomBytes(4).toString('hex')}` })),
        metadata: async () => {
          const store = new RedisStore({ ...redisConfigSchema.parse({ url, keyPrefix: `berth-${randomBytes(4).toString('hex')}:` }) });
          await store.waitUntilReady(5000);
          return store;
        },
      };
    },
    overwrite: viaDriver,
  },
];

function flipByte(at: number) {
  return (bytes: Buffer): Buffer => {
    const copy = Buffer.from(bytes);
    copy[at] = (copy[at] ?? 0) ^ 0x01;
    return copy;
  };
}

async function quarantined(driver: BlobDriver): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of driver.list('quarantine')) keys.push(key);
  return keys;
}

for (const setup of SETUPS) {
  describe(`integrity: ${setup.name}`, () => {
    let reg: TestRegistry;
    let c: RegistryClient;
    let events: IntegrityEvent[];

    async function start(config: BerthConfigInput = {}): Promise<void> {
      events = [];
      reg = await startTestRegistry({
        ...(await setup.options()),
        // Blobs above 64 KiB take the streaming path; those above 256 KiB are "large" for the policy.
        config: { ...config, storage: { verifySmallBytes: 256 * 1024, ...config.storage } },
        deps: { onIntegrity: (e) => events.push(e) },
      });
      c = new RegistryClient(reg.url);
    }

    beforeEach(() => start());
    afterEach(() => reg.close());

    const blobUrl = (repo: string, b: Blob) => `${reg.url}/v2/${repo}/blobs/${b.digest}`;

    async function expectHealed(repo: string, b: Blob): Promise<void> {
      assert.equal((await c.fetch(`/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' })).status, 404, 'HEAD must stop claiming a blob storage does not hold');
      await c.pushBlob(repo, b);
      assert.equal((await c.fetch(`/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' })).status, 200);
      const clean = await download(blobUrl(repo, b));
      assert.equal(clean.status, 200);
      assert.ok(clean.complete);
      assert.equal(sha256(clean.body), b.digest);
    }

    it('cuts a full GET of a corrupt large blob before its last byte, quarantines it, and a push heals it', async () => {
      const b = randomBlob(3 * 1024 * 1024 + 17);
      await c.pushBlob('int/app', b);
      await setup.overwrite(reg, blobKey(parseDigest(b.digest)), flipByte(1_500_000));

      const got = await download(blobUrl('int/app', b));
      // A stream that comes as one chunk (memory) is found bad before any byte is out: a clean 404.
      if (got.status === 404) assert.match(got.body.toString(), /corrupt/);
      else {
        assert.equal(got.status, 200);
        assert.equal(got.complete, false, 'the body must not end cleanly');
        assert.ok(got.body.length < b.size, `received ${got.body.length} of ${b.size} bytes`);
      }
      assert.ok(got.ms < CLIENT_TIMEOUT_MS / 10);

      assert.equal((await quarantined(reg.driver)).length, 1);
      assert.deepEqual(
        events.map((e) => [e.kind, e.reason, e.foundBy, e.digest]),
        [['blob', 'digest_mismatch', 'read', b.digest]],
      );
      await expectHealed('int/app', b);
    });

    it('answers a corrupt small blob with 404 instead of its bytes', async () => {
      const b = randomBlob(2000);
      await c.pushBlob('int/app', b);
      await setup.overwrite(reg, blobKey(parseDigest(b.digest)), flipByte(10));
      const got = await download(blobUrl('int/app', b));
      assert.equal(got.status, 404);
      assert.match(got.body.toString(), /BLOB_UNKNOWN.*corrupt/);
      await expectHealed('int/app', b);
    });

    it('verifies a large blob on its first read only under the default policy, every read under always', async () => {
      const b = randomBlob(1024 * 1024);
      await c.pushBlob('int/app', b);
      assert.ok((await download(blobUrl('int/app', b))).complete);
      await setup.overwrite(reg, blobKey(parseDigest(b.digest)), flipByte(5));
      // Policy `first`: already verified by this process, so it is not hashed again (scrub covers it).
      const second = await download(blobUrl('int/app', b));
      assert.equal(second.complete, true);
      assert.equal(events.length, 0);

      await reg.close();
      await start({ storage: { verifyReads: 'always' } });
      await c.pushBlob('int/app', b);
      assert.ok((await download(blobUrl('int/app', b))).complete);
      await setup.overwrite(reg, blobKey(parseDigest(b.digest)), flipByte(5));
      const cut = await download(blobUrl('int/app', b));
      assert.ok(cut.status === 404 || !cut.complete, `${cut.status} ${cut.complete}`);
      assert.equal(events.length, 1);
    });

    it('serves a Range of an unverified blob but verifies it whole behind it and quarantines it if bad', async () => {
      const b = randomBlob(1024 * 1024);
      await c.pushBlob('int/app', b);
      await setup.overwrite(reg, blobKey(parseDigest(b.digest)), flipByte(900_000));
      const part = await download(blobUrl('int/app', b), { range: 'bytes=0-99' });
      assert.equal(part.status, 206);
      assert.ok(part.complete);
      assert.deepEqual(part.body, b.data.subarray(0, 100));
      await reg.app.integrity.settled();
      assert.deepEqual(
        events.map((e) => e.reason),
        ['digest_mismatch'],
      );
      await expectHealed('int/app', b);
    });

    it('ends the response at once for a truncated blob instead of leaving the client waiting', async () => {
      for (const [size, range] of [
        [2 * 1024 * 1024, undefined],
        [2000, undefined],
        [2 * 1024 * 1024, 'bytes=1048576-2097151'],
      ] as const) {
        const b = randomBlob(size);
        await c.pushBlob('int/app', b);
        await setup.overwrite(reg, blobKey(parseDigest(b.digest)), (bytes) => bytes.subarray(0, Math.floor(size / 3)));
        const got = await download(blobUrl('int/app', b), range ? { range } : {});
        // Either refused before the headers (the driver knew the size at open) or cut: never a clean, short 200.
        assert.ok(got.status === 404 || !got.complete, `size ${size} range ${range}: ${got.status}, complete ${got.complete}`);
        assert.ok(got.ms < CLIENT_TIMEOUT_MS / 10);
        await expectHealed('int/app', b);
      }
      assert.deepEqual(new Set(events.map((e) => e.reason)), new Set(['size_mismatch']));
    });

    it('stops HEAD claiming a blob once a GET found it missing, and a push heals it', async () => {
      const b = randomBlob(100_000);
      await c.pushBlob('int/app', b);
      await reg.driver.delete(blobKey(parseDigest(b.digest)));
      // Before anything looked at storage, HEAD is answered from metadata alone (the fast path).
      assert.equal((await c.fetch(`/v2/int/app/blobs/${b.digest}`, { method: 'HEAD' })).status, 200);
      const got = await download(blobUrl('int/app', b));
      assert.equal(got.status, 404);
      assert.match(got.body.toString(), /does not hold its bytes/);
      assert.deepEqual(
        events.map((e) => e.reason),
        ['missing'],
      );
      await expectHealed('int/app', b);
      // A mount from a repository whose copy is gone is refused too, so the client uploads instead.
      await reg.driver.delete(blobKey(parseDigest(b.digest)));
      assert.equal((await download(blobUrl('int/app', b))).status, 404);
      const mount = await c.fetch(`/v2/int/other/blobs/uploads/?mount=${b.digest}&from=int/app`, { method: 'POST' });
      assert.equal(mount.status, 202);
    });

    it('never sends a corrupt manifest kept in storage (too large to be inline), by tag or digest', async () => {
      const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
      const layer = randomBlob(100);
      await c.pushBlob('int/app', config);
      await c.pushBlob('int/app', layer);
      const manifest = imageManifest(config, [layer], { annotations: { padding: 'x'.repeat(20_000) } });
      await c.pushManifest('int/app', 'v1', manifest);
      await setup.overwrite(reg, blobKey(parseDigest(manifest.digest)), flipByte(100));
      for (const reference of ['v1', manifest.digest]) {
        const got = await download(`${reg.url}/v2/int/app/manifests/${reference}`, { accept: 'application/vnd.oci.image.manifest.v1+json' });
        assert.equal(got.status, 404, reference);
        assert.match(got.body.toString(), /MANIFEST_UNKNOWN.*(corrupt|does not hold)/);
      }
      assert.deepEqual(
        events.map((e) => [e.kind, e.reason]),
        [
          ['manifest', 'digest_mismatch'],
          ['manifest', 'missing'],
        ],
      );
      await c.pushManifest('int/app', 'v1', manifest);
      const healed = await download(`${reg.url}/v2/int/app/manifests/v1`);
      assert.equal(healed.status, 200);
      assert.equal(sha256(healed.body), manifest.digest);
    });
  });
}

describe('filesystem: a blob file that shrinks while it is being sent', () => {
  it('cuts the response and quarantines the blob', async () => {
    const events: IntegrityEvent[] = [];
    const reg = await startTestRegistry({
      driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }),
      deps: { onIntegrity: (e) => events.push(e) },
    });
    try {
      const b = randomBlob(64 * 1024 * 1024);
      await new RegistryClient(reg.url).pushBlob('shrink/app', b);
      const path = join(reg.dir, 'storage', ...blobKey(parseDigest(b.digest)).split('/'));
      const agent = new Agent({ keepAlive: true });
      const outcome = await new Promise<{ bytes: number; complete: boolean }>((resolve, reject) => {
        const req = request(`${reg.url}/v2/shrink/app/blobs/${b.digest}`, { agent }, (res) => {
          let bytes = 0;
          let first = true;
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            if (!first) return;
            first = false;
            // Paused, the socket fills and the server waits with most of the file unread: cut it short now.
            res.pause();
            truncate(path, 1024 * 1024).then(() => res.resume(), reject);
          });
          res.on('end', () => resolve({ bytes, complete: res.complete }));
          res.on('aborted', () => resolve({ bytes, complete: false }));
          res.on('error', () => resolve({ bytes, complete: false }));
        });
        req.setTimeout(CLIENT_TIMEOUT_MS, () => reject(new Error('response left open')));
        req.on('error', reject);
        req.end();
      });
      agent.destroy();
      assert.equal(outcome.complete, false);
      assert.ok(outcome.bytes < b.size);
      assert.deepEqual(
        events.map((e) => e.reason),
        ['size_mismatch'],
      );
      assert.equal((await fetch(`${reg.url}/v2/shrink/app/blobs/${b.digest}`, { method: 'HEAD' })).status, 404);
    } finally {
      await reg.close();
    }
  });
});

describe('background scrub', () => {
  it('runs when enabled, quarantines a blob that rotted while the server was down, and HEAD then says 404', async () => {
    const scratch = await makeScratchDir('bg-scrub');
    const stores = {
      driver: async () => new FilesystemDriver({ root: join(scratch.path, 'storage') }),
      metadata: async () => new EmbeddedStore({ path: join(scratch.path, 'metadata') }),
    };
    try {
      const first = await startTestRegistry(stores);
      const b = randomBlob(300_000);
      try {
        await new RegistryClient(first.url).pushBlob('bg/app', b);
      } finally {
        await first.close();
      }
      const path = join(scratch.path, 'storage', ...blobKey(parseDigest(b.digest)).split('/'));
      const bytes = await readFile(path);
      bytes[123] = (bytes[123] ?? 0) ^ 0x10;
      await writeFile(path, bytes);

      let found: (e: IntegrityEvent) => void = () => undefined;
      const event = new Promise<IntegrityEvent>((resolve) => (found = resolve));
      const second = await startTestRegistry({ ...stores, config: { storage: { scrub: { enabled: true } } }, deps: { onIntegrity: (e) => found(e) } });
      try {
        const e = await event;
        assert.deepEqual([e.digest, e.reason, e.foundBy], [b.digest, 'digest_mismatch', 'scrub']);
        assert.equal((await fetch(`${second.url}/v2/bg/app/blobs/${b.digest}`, { method: 'HEAD' })).status, 404);
      } finally {
        await second.close();
      }
    } finally {
      await scratch.remove();
    }
  });
});

describe('berth scrub', () => {
  it('finds and quarantines a corrupt blob, resumes from its cursor, and exits non-zero', async () => {
    const reg = await startTestRegistry({ driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }) });
    let closed = false;
    try {
      const c = new RegistryClient(reg.url);
      const blobs = Array.from({ length: 6 }, () => randomBlob(5000));
      for (const b of blobs) await c.pushBlob('scrub/app', b);
      const bad = blobs[3] as Blob;
      const gone = blobs[4] as Blob;
      const path = join(reg.dir, 'storage', ...blobKey(parseDigest(bad.digest)).split('/'));
      const bytes = await readFile(path);
      bytes[0] = (bytes[0] ?? 0) ^ 0xff;
      await writeFile(path, bytes);
      await reg.driver.delete(blobKey(parseDigest(gone.digest)));

      // A run stopped after two objects leaves its cursor behind; the next one starts after it.
      const integrity = new Integrity(reg.driver, reg.metadata, { verifyReads: 'always', smallBytes: 0, rememberVerified: 0 });
      const stop = new AbortController();
      const progress: ScrubProgress[] = [];
      const first = await scrub(reg.driver, reg.metadata, integrity, {
        leaseMs: 60_000,
        progressEveryMs: 0,
        signal: stop.signal,
        onProgress: (p) => {
          progress.push(p);
          if (p.checked === 2) stop.abort();
        },
      });
      assert.equal(first.complete, false);
      assert.equal(first.checked, 2);
      const cursor = JSON.parse((await reg.driver.get(SCRUB_CURSOR_KEY)).toString()) as { after: string };
      assert.match(cursor.after, /^blobs\/sha256\//);

      // Fenced: while one holder has the lease, another scrub is refused.
      assert.equal(await reg.metadata.acquireLease('scrub', 'someone-else', 60_000), true);
      await assert.rejects(scrub(reg.driver, reg.metadata, integrity, { leaseMs: 60_000 }), ScrubBusyError);
      await reg.metadata.releaseLease('scrub', 'someone-else');

      // Stop the server but keep its directory for the CLI runs.
      await reg.app.close();
      await reg.metadata.close();
      await reg.driver.close();
      closed = true;
      const configFile = join(reg.dir, 'config.yaml');
      await writeFile(
        configFile,
        `dataDir: ${JSON.stringify(reg.dir)}\nstorage:\n  filesystem:\n    root: ${JSON.stringify(join(reg.dir, 'storage'))}\nmetadata:\n  embedded:\n    path: ${JSON.stringify(join(reg.dir, 'metadata'))}\n`,
      );
      const bin = fileURLToPath(new URL('../../../bin/berth.js', import.meta.url));
      const run = (extra: string[] = []) =>
        new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
          execFile(process.execPath, [bin, 'scrub', '--config', configFile, '--progress-ms', '0', ...extra], { timeout: 30_000 }, (err, stdout, stderr) => {
            resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
          });
        });
      const second = await run();
      assert.equal(second.code, 1, second.stderr);
      const summary = JSON.parse(second.stdout) as {
        checked: number;
        corrupt: number;
        missing: number;
        complete: boolean;
        resumedAfter?: string;
        bad: { digest: string; reason: string }[];
      };
      assert.equal(summary.resumedAfter, cursor.after);
      // Six pushed, one deleted, two checked by the first run.
      assert.equal(summary.checked, 3);
      assert.equal(summary.complete, true);
      const found = new Map(summary.bad.map((b) => [b.digest, b.reason]));
      // Either the corrupt blob lies before the cursor (the first run then quarantined it) or after it.
      const corruptFoundFirst = first.bad.some((b) => b.digest === bad.digest);
      // Quarantined by the first run, it is reported missing (its link is still journaled) by the second.
      assert.equal(found.get(bad.digest), corruptFoundFirst ? 'missing' : 'digest_mismatch');
      assert.equal(found.get(gone.digest), 'missing');
      assert.match(second.stderr, /scrub: objects: \d+ checked/);
      assert.match(second.stderr, /quarantined to quarantine\/sha256\/|missing from storage/);

      // The pass finished, so the next starts over: nothing corrupt is left under blobs/, and both
      // lost blobs stay reported missing until they are pushed again.
      const third = await run();
      assert.equal(third.code, 1, third.stderr);
      const again = JSON.parse(third.stdout) as { checked: number; corrupt: number; missing: number; resumedAfter?: string };
      assert.deepEqual([again.checked, again.corrupt, again.missing, again.resumedAfter], [4, 0, 2, undefined]);

      const usage = await run(['--rate', 'fast']);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /--rate must be a whole number of bytes per second, got "fast"/);
    } finally {
      if (!closed) await reg.close();
      else await rm(reg.dir, { recursive: true, force: true });
    }
  });
});
