// The single-flight fill (server/registry/proxy/fills.ts) on real storage and metadata: two BlobFills
// over the same backends stand for two Berth processes (each with its own driver instance and, on
// Redis, its own connection), fed by a counting, throttled source of a 64 MiB blob.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BlobNotFoundError, type BlobDriver } from '../../storage-drivers/blob/types.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import { blobKey, FILLS_ROOT } from '../../server/registry/keys.js';
import { BlobFills, type BlobFillsOptions, type FillEvent, type OpenFillSource, type ServedBlob } from '../../server/registry/proxy/fills.js';
import type { ParsedDigest } from '../../server/registry/references.js';
import { SharedReads } from '../../server/registry/shared-reads.js';
import { chunkReads, countingReads } from '../helpers/counting-reads.js';

const MiB = 1024 * 1024;
const BLOB_BYTES = 64 * MiB;
const PIECE = 256 * 1024;

/** One deployment of the fill: storage and metadata as two processes see them. */
export interface FillEnvironment {
  /** Driver and store of "process" A and B; B's are separate instances over the same backends. */
  a: { driver: BlobDriver; metadata: MetadataStore };
  b: { driver: BlobDriver; metadata: MetadataStore };
  close(): Promise<void>;
}

const content = randomBytes(BLOB_BYTES);
const digest: ParsedDigest = (() => {
  const hex = createHash('sha256').update(content).digest('hex');
  return { algorithm: 'sha256', hex, value: `sha256:${hex}` };
})();

interface SourceControl {
  /** Sends at most this many bytes, then waits (Infinity: all). */
  limit: number;
  /** Bytes sent so far. */
  sent: number;
  /** Replaces what is sent at an offset (a corrupt upstream). */
  corruptAt?: number;
  /** Fails the stream after this many bytes (an upstream that dies). */
  dieAt?: number;
  readonly events: EventEmitter;
}

/** A slow source of `content`: PIECE bytes per tick, counting its opens. */
function slowSource(opens: { count: number }, control: SourceControl, delayMs = 1): OpenFillSource {
  return async (signal) => {
    opens.count++;
    let offset = 0;
    async function* pieces(): AsyncGenerator<Buffer> {
      while (offset < BLOB_BYTES) {
        signal.throwIfAborted();
        while (offset >= control.limit) await once(control.events, 'limit', { signal });
        if (control.dieAt !== undefined && offset >= control.dieAt) throw new Error('upstream connection reset');
        await sleep(delayMs);
        let piece = content.subarray(offset, Math.min(offset + PIECE, BLOB_BYTES));
        if (control.corruptAt !== undefined && control.corruptAt >= offset && control.corruptAt < offset + piece.length) {
          piece = Buffer.from(piece);
          piece[control.corruptAt - offset] = (piece[control.corruptAt - offset] as number) ^ 0xff;
        }
        offset += piece.length;
        control.sent = offset;
        control.events.emit('sent', offset);
        yield piece;
      }
    }
    return { size: BLOB_BYTES, stream: Readable.from(pieces(), { objectMode: false }) };
  };
}

function newControl(): SourceControl {
  return { limit: Number.POSITIVE_INFINITY, sent: 0, events: new EventEmitter() };
}

function release(control: SourceControl, limit = Number.POSITIVE_INFINITY): void {
  control.limit = limit;
  control.events.emit('limit');
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const collect = ((): (() => void) => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

function liveBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Waits until the fills have finished their cleanup (it runs after the waiters are answered). */
async function settled(...fills: BlobFills[]): Promise<void> {
  await until('the fills to settle', () => fills.every((f) => f.running === 0));
}

interface Received {
  digest?: string;
  bytes: number;
  error?: Error;
}

/** Reads a served blob to its end (or error), hashing it. */
async function drain(served: Promise<ServedBlob>): Promise<Received> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    const blob = await served;
    for await (const piece of blob.stream) {
      hash.update(piece as Buffer);
      bytes += (piece as Buffer).length;
    }
    return { digest: `sha256:${hash.digest('hex')}`, bytes };
  } catch (err) {
    return { bytes, error: err as Error };
  }
}

async function exists(driver: BlobDriver, key: string): Promise<boolean> {
  try {
    await driver.stat(key);
    return true;
  } catch (err) {
    if (err instanceof BlobNotFoundError) return false;
    throw err;
  }
}

async function keysUnder(driver: BlobDriver, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of driver.list(prefix)) keys.push(key);
  return keys.sort();
}

const OPTIONS: BlobFillsOptions = { chunkBytes: 8 * MiB, leaseMs: 3000, pollMs: { min: 5, max: 50 } };

/** What a BlobFills observer saw, in a form a test can compare whole. */
function summarize(events: FillEvent[]): { started: string[]; finished: string[]; served: Partial<Record<string, number>>; spool: number } {
  const summary = { started: [] as string[], finished: [] as string[], served: {} as Partial<Record<string, number>>, spool: 0 };
  for (const event of events) {
    if (event.kind === 'started') summary.started.push(event.how);
    else if (event.kind === 'finished') summary.finished.push(`${event.outcome} ${event.fetchedBytes}`);
    else if (event.kind === 'served') summary.served[event.from] = (summary.served[event.from] ?? 0) + 1;
    else summary.spool += event.deltaBytes;
  }
  return summary;
}

export function runFillSuite(title: string, setup: () => Promise<FillEnvironment>): void {
  describe(`blob fills: ${title}`, () => {
    let env: FillEnvironment;
    before(async () => {
      env = await setup();
    });
    after(async () => {
      await env.close();
    });

    async function clean(): Promise<void> {
      await env.a.driver.delete(blobKey(digest).replace(/\/data$/, ''));
      await env.a.driver.delete(FILLS_ROOT);
    }

    it('feeds 20 + 20 concurrent requests in two processes, and late joiners, from one source open', async () => {
      await clean();
      const a = new BlobFills(env.a.driver, env.a.metadata, OPTIONS);
      const b = new BlobFills(env.b.driver, env.b.metadata, OPTIONS);
      const opens = { count: 0 };
      const control = newControl();
      // Held at the start so every early request is in before the first byte: all of them join.
      release(control, 0);
      const open = slowSource(opens, control);
      // Live memory (collected before each sample), not garbage the collector has not reached yet.
      collect();
      const baseline = liveBytes();
      let peak = baseline;
      const sampler = setInterval(() => {
        collect();
        peak = Math.max(peak, liveBytes());
      }, 100);
      try {
        const early = [
          ...Array.from({ length: 20 }, () => drain(a.serve(digest, BLOB_BYTES, open))),
          ...Array.from({ length: 20 }, () => drain(b.serve(digest, undefined, open))),
        ];
        await until('the source to open', () => opens.count >= 1);
        release(control);
        await until('half the bytes', () => control.sent >= BLOB_BYTES / 2);
        const late = [
          ...Array.from({ length: 5 }, () => drain(a.serve(digest, BLOB_BYTES, open))),
          ...Array.from({ length: 5 }, () => drain(b.serve(digest, BLOB_BYTES, open))),
        ];
        const results = await Promise.all([...early, ...late]);
        for (const [i, r] of results.entries()) {
          assert.equal(r.error, undefined, `consumer ${i}: ${r.error?.message}`);
          assert.equal(r.bytes, BLOB_BYTES, `consumer ${i}`);
          assert.equal(r.digest, digest.value, `consumer ${i}`);
        }
        assert.equal(opens.count, 1, 'one source open for every request of both processes');
        assert.equal(await exists(env.b.driver, blobKey(digest)), true, 'committed at the blob key');
        await settled(a, b);
        assert.deepEqual(await keysUnder(env.a.driver, FILLS_ROOT), [], 'the spool is gone');
        assert.equal(a.spooling, 0);
      } finally {
        clearInterval(sampler);
      }
      const growthMiB = (peak - baseline) / MiB;
      // 50 readers of a 64 MiB blob in 8 MiB chunks: a blob per reader would be 3 GiB, a chunk per
      // reader 400 MiB; what stays is the fill's one chunk and each reader's stream buffers (~2 MiB).
      assert.ok(growthMiB < 200, `live memory grew by ${growthMiB.toFixed(0)} MiB`);
      // Committed: a new request reads storage and opens nothing.
      const again = await drain(b.serve(digest, BLOB_BYTES, open));
      assert.equal(again.digest, digest.value);
      assert.equal(opens.count, 1);
    });

    it("shares one storage read per committed chunk among the followers of another process's fill", async () => {
      await clean();
      const spoolDir = await mkdtemp(join(tmpdir(), 'fill-spool-'));
      const shared = new SharedReads({ spoolDir, maxSpoolBytes: 256 * MiB });
      const counted = countingReads(env.b.driver);
      const bEvents: FillEvent[] = [];
      const a = new BlobFills(env.a.driver, env.a.metadata, OPTIONS);
      const b = new BlobFills(counted.driver, env.b.metadata, { ...OPTIONS, sharedReads: shared, observer: (event) => bEvents.push(event) });
      const opens = { count: 0 };
      const control = newControl();
      release(control, 0);
      const open = slowSource(opens, control);
      try {
        const aWaiter = drain(a.serve(digest, BLOB_BYTES, open));
        await until('the source to open', () => opens.count >= 1);
        const followers = Array.from({ length: 10 }, () => drain(b.serve(digest, BLOB_BYTES, open)));
        await until('B to join', () => summarize(bEvents).served.remote === 10);
        release(control);
        const results = await Promise.all([aWaiter, ...followers]);
        for (const [i, r] of results.entries()) {
          assert.equal(r.error, undefined, `consumer ${i}: ${r.error?.message}`);
          assert.equal(r.digest, digest.value, `consumer ${i}`);
        }
        assert.equal(opens.count, 1);
        const chunks = BLOB_BYTES / OPTIONS.chunkBytes!;
        const chunksRead = chunkReads(counted.reads);
        assert.equal(chunksRead.length, chunks, `every chunk read by B: ${JSON.stringify([...counted.reads])}`);
        // A follower that fell a whole chunk behind the rest may start a read of its own; ten is one each.
        for (const [key, count] of chunksRead) assert.ok(count <= 2, `${key} read ${count} times by B's 10 followers`);
        assert.equal(counted.reads.get(blobKey(digest)), 1, "the committed blob's tail read once for B's followers");
        await settled(a, b);
        assert.equal(shared.inFlight, 0, 'no shared read left');
      } finally {
        await shared.close();
        await rm(spoolDir, { recursive: true, force: true });
      }
    });

    it('fails every waiter in both processes and commits nothing when the source sends wrong bytes', async () => {
      await clean();
      const events: FillEvent[] = [];
      const a = new BlobFills(env.a.driver, env.a.metadata, { ...OPTIONS, observer: (event) => events.push(event) });
      const b = new BlobFills(env.b.driver, env.b.metadata, { ...OPTIONS, observer: (event) => events.push(event) });
      const opens = { count: 0 };
      const control = newControl();
      control.corruptAt = 40 * MiB + 17;
      release(control, 0);
      const open = slowSource(opens, control);
      const waiters = [
        ...Array.from({ length: 5 }, () => drain(a.serve(digest, BLOB_BYTES, open))),
        ...Array.from({ length: 5 }, () => drain(b.serve(digest, BLOB_BYTES, open))),
      ];
      await until('the source to open', () => opens.count >= 1);
      release(control);
      const results = await Promise.all(waiters);
      for (const [i, r] of results.entries()) {
        assert.ok(r.error, `consumer ${i} must fail, got ${r.bytes} bytes`);
        assert.ok(r.bytes < BLOB_BYTES, `consumer ${i} got a complete body`);
        assert.match(r.error.message, /digest/, `consumer ${i}: ${r.error.message}`);
      }
      assert.equal(opens.count, 1);
      await settled(a, b);
      assert.deepEqual(summarize(events), { started: ['fresh'], finished: [`failed ${BLOB_BYTES}`], served: { started: 1, local: 4, remote: 5 }, spool: 0 });
      assert.equal(await exists(env.a.driver, blobKey(digest)), false, 'nothing at the blob key');
      assert.deepEqual(
        (await keysUnder(env.a.driver, FILLS_ROOT)).filter((k) => !k.endsWith('/state')),
        [],
        'no chunk left',
      );
      assert.equal(await a.sweepFills(new Date(Date.now() + 60_000)), 1, 'the failure record is swept');
      assert.deepEqual(await keysUnder(env.a.driver, FILLS_ROOT), []);
    });

    it('fails every waiter and commits nothing when the source dies mid-way; the next request fills again', async () => {
      await clean();
      const a = new BlobFills(env.a.driver, env.a.metadata, OPTIONS);
      const b = new BlobFills(env.b.driver, env.b.metadata, OPTIONS);
      const opens = { count: 0 };
      const control = newControl();
      control.dieAt = 20 * MiB;
      release(control, 0);
      const open = slowSource(opens, control);
      const waiters = [
        ...Array.from({ length: 5 }, () => drain(a.serve(digest, BLOB_BYTES, open))),
        ...Array.from({ length: 5 }, () => drain(b.serve(digest, BLOB_BYTES, open))),
      ];
      await until('the source to open', () => opens.count >= 1);
      release(control);
      const results = await Promise.all(waiters);
      for (const [i, r] of results.entries()) {
        assert.ok(r.error, `consumer ${i} must fail`);
        assert.match(r.error.message, /connection reset/, `consumer ${i}: ${r.error.message}`);
      }
      await settled(a, b);
      assert.equal(await exists(env.a.driver, blobKey(digest)), false);
      assert.deepEqual(
        (await keysUnder(env.a.driver, FILLS_ROOT)).filter((k) => !k.endsWith('/state')),
        [],
      );
      // A retry is a new fill, from a source that works now.
      delete control.dieAt;
      const retried = await drain(b.serve(digest, BLOB_BYTES, open));
      assert.equal(retried.digest, digest.value);
      assert.equal(opens.count, 2);
      await settled(a, b);
      assert.deepEqual(await keysUnder(env.a.driver, FILLS_ROOT), []);
    });

    it('refuses a fill past maxFillBytes before opening the source, with a clear error', async () => {
      await clean();
      const a = new BlobFills(env.a.driver, env.a.metadata, { ...OPTIONS, maxFillBytes: 32 * MiB });
      const opens = { count: 0 };
      const refused = await drain(a.serve(digest, BLOB_BYTES, slowSource(opens, newControl())));
      assert.match(refused.error?.message ?? '', /maxFillBytes/);
      assert.equal(opens.count, 0, 'the source was not asked');
      await settled(a);
      assert.equal(a.spooling, 0);
      assert.equal(await exists(env.a.driver, blobKey(digest)), false);
    });

    it('takes over the fill of a process that died, resuming from its committed chunks', async () => {
      await clean();
      // A's store stops answering lease calls once "killed": no renewal, no next chunk, no cleanup,
      // as a process gone mid-fill.
      let killed = false;
      const frozen = new Proxy(env.a.metadata, {
        get(target, prop, receiver) {
          if (prop === 'acquireLease' || prop === 'releaseLease') {
            return (...args: unknown[]) =>
              killed ? new Promise(() => undefined) : (Reflect.get(target, prop, receiver) as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          }
          const value = Reflect.get(target, prop, receiver) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const short: BlobFillsOptions = { ...OPTIONS, leaseMs: 600 };
      const a = new BlobFills(env.a.driver, frozen, short);
      const bEvents: FillEvent[] = [];
      const b = new BlobFills(env.b.driver, env.b.metadata, { ...short, observer: (event) => bEvents.push(event) });
      const opensA = { count: 0 };
      const controlA = newControl();
      release(controlA, 0);
      const aWaiters = Array.from({ length: 3 }, () => drain(a.serve(digest, BLOB_BYTES, slowSource(opensA, controlA))));
      await until('A to open', () => opensA.count === 1);
      const opensB = { count: 0 };
      const controlB = newControl();
      const openB = slowSource(opensB, controlB, 0);
      const bWaiters = Array.from({ length: 5 }, () => drain(b.serve(digest, BLOB_BYTES, openB)));
      // A sends 3 whole chunks and a little more, then dies.
      release(controlA, 3 * 8 * MiB + PIECE);
      await until('A to commit 3 chunks', async () => (await keysUnder(env.a.driver, FILLS_ROOT)).length >= 4);
      await until('A to receive its bytes', () => controlA.sent === 3 * 8 * MiB + PIECE);
      killed = true;
      const results = await Promise.all(bWaiters);
      for (const [i, r] of results.entries()) {
        assert.equal(r.error, undefined, `B consumer ${i}: ${r.error?.message}`);
        assert.equal(r.digest, digest.value);
      }
      assert.equal(opensB.count, 1, 'B opened the source once to take over');
      assert.equal(await exists(env.b.driver, blobKey(digest)), true);
      await settled(b);
      assert.deepEqual(await keysUnder(env.b.driver, FILLS_ROOT), []);
      // B's source sends the whole blob; the fill skips the three chunks it had.
      assert.deepEqual(summarize(bEvents), { started: ['resumed'], finished: [`committed ${BLOB_BYTES}`], served: { remote: 5 }, spool: 0 });
      // A's requests died with A; unblocking its source lets nothing complete there.
      void aWaiters;
    });
  });
}
