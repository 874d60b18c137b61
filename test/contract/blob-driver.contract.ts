// The one behaviour every BlobDriver must show (in the spirit of distribution's
// registry/storage/driver/testsuites); run by test/drivers/*.test.ts for each driver.
//
// Semantics pinned down here, beyond the comments in storage-drivers/blob/types.ts:
// - Reads: `start` defaults to 0 and `end` (inclusive) to size - 1; `end` past the object is clamped.
//   `start === size` yields an empty stream (so an empty object reads as empty); `start > size`,
//   negative or non-integer offsets, or `end < start` throw InvalidOffsetError.
// - `writer(key, { resume: { size: 0 } })` with no in-progress object at `key` starts an empty one
//   (an upload session's first PATCH); resuming a checkpoint of more bytes than the object holds (it was
//   deleted, cancelled or swept) throws InProgressLostError.
// - Abort: when `write()` is aborted through its signal it rejects (AbortError), nothing becomes visible
//   at `key`, and the writer stays usable for `close()` or `cancel()`. The in-progress object is
//   *resumable*: `close()` returns a checkpoint whose size equals the aborted writer's `size`,
//   `writer(key, { resume })` continues there, and the bytes kept are a prefix of what was sent.
// - A reader given an already-aborted signal either rejects or returns a stream that errors.
// - A key may not be both an object and a prefix of other objects (the filesystem cannot do it), so the
//   suite never creates `a/b` next to `a/b/c`.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { composeParts } from '../../storage-drivers/blob/compose.js';
import { instrument } from '../../storage-drivers/blob/instrumented.js';
import {
  BlobNotFoundError,
  InProgressLostError,
  InvalidKeyError,
  InvalidOffsetError,
  type BlobDriver,
  type BlobSender,
  type SendCheck,
  type WriterCheckpoint,
} from '../../storage-drivers/blob/types.js';

export interface BlobDriverFixture {
  driver: BlobDriver;
  cleanup(): Promise<void>;
  /**
   * Optional: a second, independent driver over the same backend, as another Berth process would have
   * it. When given, resumed writers and cross-instance reads use it.
   */
  peer?: BlobDriver;
  /**
   * Optional: every raw object the backend holds, including hidden in-progress and temporary data.
   * When given, the suite fails a test that leaves any raw object whose name contains its prefix.
   */
  rawKeys?(): Promise<string[]>;
}

const MiB = 1024 * 1024;

/** Deterministic filler: a fixed pseudo-random block, each chunk stamped with its offset. */
const BLOCK = (() => {
  const block = Buffer.alloc(MiB);
  let x = 0x9e3779b9;
  for (let i = 0; i < block.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block.writeUInt32LE(x >>> 0, i);
  }
  return block;
})();

/**
 * Filler bytes as a pure function of their absolute position (so any piece, range or chunking of the
 * same positions agrees): period n of the block is the block rotated by n * 7919, which makes swapped,
 * repeated or shifted data change the digest.
 */
function chunkAt(offset: number, length: number): Buffer {
  const chunk = Buffer.allocUnsafe(length);
  let written = 0;
  while (written < length) {
    const position = offset + written;
    const period = Math.floor(position / BLOCK.length);
    const from = (position - period * BLOCK.length + period * 7919) % BLOCK.length;
    const take = Math.min(length - written, BLOCK.length - from, BLOCK.length - (position % BLOCK.length));
    BLOCK.copy(chunk, written, from, from + take);
    written += take;
  }
  return chunk;
}

/** Odd chunk sizes so no chunk boundary lines up with a part or buffer boundary. */
const CHUNK_SIZES = [65_536, 1, 131_071, 16_384, 1_000_003, 7, 300_001];

interface Generated {
  stream: Readable;
  /** The sha256 of everything streamed; call only after the stream was fully consumed. */
  digest(): string;
}

/** Streams `length` bytes starting at logical `offset` of the filler, hashing them as they go. */
function generate(length: number, offset = 0, hash = createHash('sha256')): Generated {
  let produced = 0;
  let sizeIndex = 0;
  let digest: string | undefined;
  const stream = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      if (produced === length) {
        this.push(null);
        return;
      }
      const size = Math.min(CHUNK_SIZES[sizeIndex++ % CHUNK_SIZES.length] ?? 65_536, length - produced);
      const chunk = chunkAt(offset + produced, size);
      produced += size;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  return {
    stream,
    digest() {
      assert.equal(produced, length, 'source was not fully consumed');
      digest ??= hash.digest('hex');
      return digest;
    },
  };
}

function bytes(length: number, offset = 0): Buffer {
  return chunkAt(offset, length);
}

function source(data: Buffer | Buffer[]): Readable {
  return Readable.from(Array.isArray(data) ? data : [data], { objectMode: false });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function hashAll(stream: Readable): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    hash.update(buf);
  }
  return { digest: hash.digest('hex'), size };
}

/** A destination that copies what it is given (senders reuse their buffers once a write completes). */
class Collector extends Writable {
  private readonly parts: Buffer[] = [];
  size = 0;

  constructor(private readonly afterFirst?: () => void) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.parts.push(Buffer.from(chunk));
    this.size += chunk.length;
    if (this.parts.length === 1) this.afterFirst?.();
    callback();
  }

  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Opens a sender for `key` and sends it to `dest` (a fresh Collector by default), closing it either way. */
async function sendAll(
  driver: BlobDriver,
  key: string,
  options: { start?: number; end?: number },
  check?: SendCheck,
  dest = new Collector(),
): Promise<{ sent: Buffer; sender: BlobSender }> {
  const sender = await (driver.openSender as NonNullable<BlobDriver['openSender']>)(key, options);
  try {
    await sender.sendTo(dest, undefined, check);
  } finally {
    await sender.close();
  }
  return { sent: dest.bytes, sender };
}

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of iterable) keys.push(key);
  return keys.sort();
}

async function rejectsWith(fn: () => unknown, type: new (...args: never[]) => Error, what: string): Promise<void> {
  await assert.rejects(
    async () => fn(),
    (err: unknown) => {
      assert.ok(err instanceof type, `${what}: expected ${type.name}, got ${String(err)}`);
      return true;
    },
  );
}

/** A source that hands out `before` bytes, then aborts `controller` when asked for more and stalls. */
function abortingSource(before: number, controller: AbortController): Readable {
  let produced = 0;
  return new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (produced >= before) {
        controller.abort();
        return;
      }
      const size = Math.min(64 * 1024, before - produced);
      this.push(chunkAt(produced, size));
      produced += size;
    },
  });
}

const INVALID_KEYS = [
  '',
  '/',
  '/abs',
  '/etc/passwd',
  'a/',
  'a//b',
  '.',
  '..',
  '../x',
  'a/../b',
  'a/..',
  './a',
  'a/./b',
  'a\\b',
  '..\\x',
  'a b',
  'a\0b',
  'é',
  'a/%2e%2e/b',
  'x'.repeat(1025),
];

/** What a driver offers beyond the required interface; its section runs only where it is offered. */
export interface BlobDriverFeatures {
  /** `openSender` (the filesystem and S3 drivers): every sender test runs and the method must exist. */
  sender: boolean;
}

export function runBlobDriverContract(name: string, setup: () => Promise<BlobDriverFixture>, features: BlobDriverFeatures = { sender: true }): void {
  describe(`BlobDriver contract: ${name}`, () => {
    let fixture: BlobDriverFixture;
    let driver: BlobDriver;
    /** Where a resumed writer or another process would look; the same driver when no peer is given. */
    let other: BlobDriver;
    let prefix: string;
    const k = (path: string): string => `${prefix}/${path}`;

    before(async () => {
      fixture = await setup();
      // Through `instrument`, as server/storage-stack.ts runs every driver: it checks keys for all of them.
      driver = instrument(fixture.driver, () => undefined);
      other = fixture.peer ? instrument(fixture.peer, () => undefined) : driver;
    });
    after(async () => {
      await fixture.cleanup();
    });
    beforeEach(() => {
      prefix = `contract-${randomBytes(6).toString('hex')}`;
    });
    afterEach(async () => {
      const left = await collect(driver.list(prefix));
      const raw = fixture.rawKeys ? (await fixture.rawKeys()).filter((key) => key.includes(prefix)) : [];
      await driver.delete(prefix);
      assert.deepEqual(left, [], 'test left committed keys behind');
      assert.deepEqual(raw, [], 'test left raw (in-progress or temporary) objects behind');
    });

    describe('keys', () => {
      it('rejects invalid keys with InvalidKeyError from every method', async () => {
        await driver.put(k('valid'), Buffer.from('v'));
        for (const bad of INVALID_KEYS) {
          const what = `key ${JSON.stringify(bad.slice(0, 20))}`;
          await rejectsWith(() => driver.stat(bad), InvalidKeyError, `stat ${what}`);
          await rejectsWith(() => driver.reader(bad), InvalidKeyError, `reader ${what}`);
          await rejectsWith(() => driver.get(bad), InvalidKeyError, `get ${what}`);
          await rejectsWith(() => driver.put(bad, Buffer.from('x')), InvalidKeyError, `put ${what}`);
          await rejectsWith(() => driver.writer(bad, {}), InvalidKeyError, `writer ${what}`);
          await rejectsWith(() => driver.writer(bad, { resume: { size: 0 } }), InvalidKeyError, `resume ${what}`);
          await rejectsWith(() => driver.move(bad, k('to')), InvalidKeyError, `move from ${what}`);
          await rejectsWith(() => driver.move(k('valid'), bad), InvalidKeyError, `move to ${what}`);
          await rejectsWith(() => driver.delete(bad), InvalidKeyError, `delete ${what}`);
          await rejectsWith(() => driver.deleteMany([k('valid'), bad]), InvalidKeyError, `deleteMany ${what}`);
          await rejectsWith(() => collect(driver.list(bad)), InvalidKeyError, `list ${what}`);
        }
        // Nothing moved or deleted by the rejected calls.
        assert.deepEqual(await driver.get(k('valid')), Buffer.from('v'));
        assert.deepEqual(await collect(driver.list(prefix)), [k('valid')]);
        await driver.delete(k('valid'));
      });

      it('accepts every character of the key alphabet', async () => {
        const key = k('Az09._-/x.y_z-W/..a/a..');
        await driver.put(key, Buffer.from('ok'));
        assert.deepEqual(await driver.get(key), Buffer.from('ok'));
        assert.deepEqual(await collect(driver.list(prefix)), [key]);
        await driver.delete(key);
      });
    });

    describe('small objects', () => {
      it('puts, gets, stats and overwrites', async () => {
        const key = k('small/object');
        const before = Date.now();
        await driver.put(key, Buffer.from('hello'));
        assert.deepEqual(await driver.get(key), Buffer.from('hello'));
        const info = await driver.stat(key);
        assert.equal(info.key, key);
        assert.equal(info.size, 5);
        assert.ok(info.modifiedAt instanceof Date);
        // Clocks of remote backends differ a little; only catch absurd values.
        assert.ok(Math.abs(info.modifiedAt.getTime() - before) < 10 * 60_000, 'modifiedAt is about now');
        assert.deepEqual(await readAll(await driver.reader(key)), Buffer.from('hello'));

        await driver.put(key, Buffer.from('bye'));
        assert.deepEqual(await driver.get(key), Buffer.from('bye'));
        assert.equal((await driver.stat(key)).size, 3);
        assert.deepEqual(await other.get(key), Buffer.from('bye'));
        await driver.delete(key);
      });

      it('puts and gets an empty object and arbitrary bytes', async () => {
        await driver.put(k('empty'), Buffer.alloc(0));
        assert.deepEqual(await driver.get(k('empty')), Buffer.alloc(0));
        assert.equal((await driver.stat(k('empty'))).size, 0);
        assert.deepEqual(await readAll(await driver.reader(k('empty'))), Buffer.alloc(0));

        const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        await driver.put(k('binary'), binary);
        assert.deepEqual(await driver.get(k('binary')), binary);
        await driver.delete(k('empty'));
        await driver.delete(k('binary'));
      });

      it('put() with keep leaves an object already stored under the key (content-addressed keys)', async () => {
        const key = k('kept/object');
        await driver.put(key, Buffer.from('first'), { keep: 'same-size' });
        assert.deepEqual(await driver.get(key), Buffer.from('first'), 'nothing stored yet: written');
        // Same size: taken to be the same content (the key names it), so not written again.
        await driver.put(key, Buffer.from('other'), { keep: 'same-size' });
        assert.deepEqual(await driver.get(key), Buffer.from('first'));
        await driver.put(key, Buffer.from('longer'), { keep: 'same-size' });
        assert.deepEqual(await driver.get(key), Buffer.from('longer'), 'a different size is written');
        // Compared byte for byte: different bytes of the same size are written.
        await driver.put(key, Buffer.from('LONGER'), { keep: 'same-bytes' });
        assert.deepEqual(await driver.get(key), Buffer.from('LONGER'));
        await driver.put(key, Buffer.from('LONGER'), { keep: 'same-bytes' });
        assert.deepEqual(await other.get(key), Buffer.from('LONGER'));
        await driver.put(k('kept/missing'), Buffer.from('new'), { keep: 'same-bytes' });
        assert.deepEqual(await driver.get(k('kept/missing')), Buffer.from('new'));
        await driver.delete(key);
        await driver.delete(k('kept/missing'));
      });

      it('throws BlobNotFoundError for missing objects', async () => {
        await rejectsWith(() => driver.get(k('missing')), BlobNotFoundError, 'get');
        await rejectsWith(() => driver.stat(k('missing')), BlobNotFoundError, 'stat');
        await rejectsWith(() => driver.reader(k('missing')), BlobNotFoundError, 'reader');
        await rejectsWith(() => driver.reader(k('missing'), { start: 3 }), BlobNotFoundError, 'ranged reader');
        await rejectsWith(() => driver.get(k('no/such/deep/key')), BlobNotFoundError, 'deep get');
        // A prefix of existing objects is not an object.
        await driver.put(k('dir/leaf'), Buffer.from('x'));
        await rejectsWith(() => driver.stat(k('dir')), BlobNotFoundError, 'stat of a prefix');
        await rejectsWith(() => driver.get(k('dir')), BlobNotFoundError, 'get of a prefix');
        await rejectsWith(() => driver.reader(k('dir')), BlobNotFoundError, 'reader of a prefix');
        // A path below an object is not an object either.
        await rejectsWith(() => driver.stat(k('dir/leaf/below')), BlobNotFoundError, 'stat below an object');
        await driver.delete(k('dir/leaf'));
      });
    });

    describe('streams', () => {
      it('writes and commits an empty stream', async () => {
        const key = k('empty-stream');
        const writer = await driver.writer(key, {});
        assert.equal(writer.size, 0);
        assert.equal(await writer.write(source([])), 0);
        assert.equal(writer.size, 0);
        await writer.commit();
        assert.equal((await driver.stat(key)).size, 0);
        assert.deepEqual(await readAll(await driver.reader(key)), Buffer.alloc(0));
        assert.deepEqual(await readAll(await driver.reader(key, { start: 0 })), Buffer.alloc(0));
        await rejectsWith(() => driver.reader(key, { start: 1 }), InvalidOffsetError, 'start 1 of empty');
        await driver.delete(key);
      });

      it('commits a writer that never wrote as an empty object', async () => {
        const key = k('never-written');
        const writer = await driver.writer(key, {});
        await writer.commit();
        assert.deepEqual(await driver.get(key), Buffer.alloc(0));
        await driver.delete(key);
      });

      it('streams 1 MiB in and out', async () => {
        const key = k('one-mib');
        const src = generate(MiB);
        const writer = await driver.writer(key, {});
        assert.equal(await writer.write(src.stream), MiB);
        assert.equal(writer.size, MiB);
        await writer.commit();
        assert.equal((await driver.stat(key)).size, MiB);
        assert.deepEqual(await hashAll(await driver.reader(key)), { digest: src.digest(), size: MiB });
        assert.deepEqual(await driver.get(key), bytes(MiB));
        await driver.delete(key);
      });

      it('streams a large object across writers and reads it back without holding it', { timeout: 120_000 }, async () => {
        // 24 MiB in pieces that straddle 5 MiB (S3 part) and 1 MiB (buffer) boundaries.
        const pieces = [7 * MiB + 1, 0, 5 * MiB - 1, 12 * MiB];
        const total = pieces.reduce((a, b) => a + b, 0);
        const key = k('large');
        const hash = createHash('sha256');
        let written = 0;
        let resumedSize = 0;
        let checkpoint: WriterCheckpoint | undefined;
        for (const [index, piece] of pieces.entries()) {
          const on = index % 2 === 0 ? driver : other;
          const writer = await on.writer(key, checkpoint === undefined ? {} : { resume: checkpoint });
          assert.equal(writer.size, written, `writer ${index} resumes at the bytes written so far`);
          const src = generate(piece, written, hash);
          assert.equal(await writer.write(src.stream), piece);
          written += piece;
          assert.equal(writer.size, written);
          resumedSize = writer.size;
          if (index === pieces.length - 1) await writer.commit();
          else {
            checkpoint = await writer.close();
            assert.equal(checkpoint.size, written, `checkpoint ${index} records the bytes written so far`);
          }
        }
        assert.equal(resumedSize, total);
        const expected = hash.digest('hex');
        assert.equal((await driver.stat(key)).size, total);
        assert.deepEqual(await hashAll(await driver.reader(key)), { digest: expected, size: total });
        assert.deepEqual(await hashAll(await other.reader(key)), { digest: expected, size: total });

        // A range straddling the first piece boundary.
        const start = 7 * MiB - 10;
        const end = 7 * MiB + 20;
        const range = await readAll(await driver.reader(key, { start, end }));
        assert.deepEqual(range, bytes(end - start + 1, start));
        // The tail from an offset inside the last piece.
        const tailStart = total - 3 * MiB - 3;
        const tail = await hashAll(await driver.reader(key, { start: tailStart }));
        assert.equal(tail.size, total - tailStart);
        assert.equal(
          tail.digest,
          createHash('sha256')
            .update(bytes(total - tailStart, tailStart))
            .digest('hex'),
        );
        await driver.delete(key);
      });
    });

    describe('ranged reads', () => {
      const size = MiB + 17;
      it('reads from offsets and inclusive ranges', async () => {
        const key = k('ranged');
        const data = bytes(size);
        await driver.put(key, data);
        const read = async (options: { start?: number; end?: number }): Promise<Buffer> => readAll(await driver.reader(key, options));
        assert.deepEqual(await read({}), data);
        assert.deepEqual(await read({ start: 0 }), data);
        assert.deepEqual(await read({ start: 5 }), data.subarray(5));
        assert.deepEqual(await read({ start: 5, end: 5 }), data.subarray(5, 6));
        assert.deepEqual(await read({ start: 5, end: 100 }), data.subarray(5, 101));
        assert.deepEqual(await read({ end: 9 }), data.subarray(0, 10));
        assert.deepEqual(await read({ start: 0, end: 0 }), data.subarray(0, 1));
        assert.deepEqual(await read({ start: size - 1 }), data.subarray(size - 1));
        assert.deepEqual(await read({ start: size - 1, end: size - 1 }), data.subarray(size - 1));
        assert.deepEqual(await read({ start: 1000, end: size + 1000 }), data.subarray(1000), 'end is clamped');
        assert.deepEqual(await read({ start: size }), Buffer.alloc(0), 'start at the end reads nothing');
        await rejectsWith(() => driver.reader(key, { start: size + 1 }), InvalidOffsetError, 'start past end');
        await rejectsWith(() => driver.reader(key, { start: 10 * size }), InvalidOffsetError, 'start far past end');
        await rejectsWith(() => driver.reader(key, { start: -1 }), InvalidOffsetError, 'negative start');
        await rejectsWith(() => driver.reader(key, { start: 10, end: 5 }), InvalidOffsetError, 'end before start');
        await rejectsWith(() => driver.reader(key, { start: 1.5 }), InvalidOffsetError, 'fractional start');
        await rejectsWith(() => driver.reader(key, { start: 0, end: -2 }), InvalidOffsetError, 'negative end');
        await driver.delete(key);
      });
    });

    describe('writers', () => {
      it('appends across write() calls and tracks size', async () => {
        const key = k('appends');
        const writer = await driver.writer(key, {});
        const parts = [bytes(10), bytes(0), bytes(70_000, 10), bytes(1, 70_010), bytes(3 * 65_536, 70_011)];
        let expected = 0;
        for (const part of parts) {
          assert.equal(await writer.write(source(part)), part.length);
          expected += part.length;
          assert.equal(writer.size, expected);
        }
        await writer.commit();
        assert.deepEqual(await driver.get(key), Buffer.concat(parts));
        await driver.delete(key);
      });

      it('resumes after close() from its checkpoint (a later PATCH, maybe another process)', async () => {
        const key = k('resume');
        const first = await driver.writer(key, {});
        await first.write(source(Buffer.from('hello ')));
        const cp1 = await first.close();
        assert.equal(first.size, 6);
        assert.equal(cp1.size, 6);

        const second = await other.writer(key, { resume: cp1 });
        assert.equal(second.size, 6);
        assert.equal(await second.write(source([Buffer.from('wor'), Buffer.from('ld')])), 5);
        assert.equal(second.size, 11);
        const cp2 = await second.close();
        assert.equal(cp2.size, 11);

        const third = await driver.writer(key, { resume: cp2 });
        assert.equal(third.size, 11);
        await third.write(source(Buffer.from('!')));
        await third.commit();
        assert.deepEqual(await driver.get(key), Buffer.from('hello world!'));
        assert.deepEqual(await other.get(key), Buffer.from('hello world!'));
        await driver.delete(key);
      });

      it('appends after a zero-byte write and a zero-byte writer', async () => {
        const key = k('zero-then-append');
        const first = await driver.writer(key, {});
        assert.equal(await first.write(source(Buffer.alloc(0))), 0);
        const checkpoint = await first.close();
        assert.equal(checkpoint.size, 0);
        const second = await other.writer(key, { resume: checkpoint });
        assert.equal(second.size, 0);
        assert.equal(await second.write(source(Buffer.from('data'))), 4);
        await second.commit();
        assert.deepEqual(await driver.get(key), Buffer.from('data'));
        await driver.delete(key);
      });

      it('starts an empty in-progress object when resuming an empty checkpoint with nothing stored (a first PATCH)', async () => {
        const key = k('resume-none');
        const writer = await driver.writer(key, { resume: { size: 0 } });
        assert.equal(writer.size, 0);
        await writer.write(source(Buffer.from('abc')));
        await writer.commit();
        assert.deepEqual(await driver.get(key), Buffer.from('abc'));
        await driver.delete(key);
      });

      it('keeps in-progress data invisible until commit()', async () => {
        const key = k('hidden/object');
        const writer = await driver.writer(key, {});
        await writer.write(source(bytes(1000)));
        const invisible = async (): Promise<void> => {
          for (const on of [driver, other]) {
            await rejectsWith(() => on.stat(key), BlobNotFoundError, 'stat of in-progress');
            await rejectsWith(() => on.reader(key), BlobNotFoundError, 'reader of in-progress');
            await rejectsWith(() => on.get(key), BlobNotFoundError, 'get of in-progress');
            assert.deepEqual(await collect(on.list(prefix)), [], 'list shows in-progress data');
          }
        };
        await invisible();
        const checkpoint = await writer.close();
        await invisible();
        const resumed = await driver.writer(key, { resume: checkpoint });
        await resumed.commit();
        assert.deepEqual(await driver.get(key), bytes(1000));
        assert.deepEqual(await collect(driver.list(prefix)), [key]);
        await driver.delete(key);
      });

      it('commit() overwrites an existing object at the key', async () => {
        const key = k('overwrite');
        await driver.put(key, Buffer.from('old contents'));
        const writer = await driver.writer(key, {});
        await writer.write(source(Buffer.from('new')));
        assert.deepEqual(await driver.get(key), Buffer.from('old contents'), 'old object readable until commit');
        await writer.commit();
        assert.deepEqual(await driver.get(key), Buffer.from('new'));
        assert.equal((await driver.stat(key)).size, 3);
        await driver.delete(key);
      });

      it('cancel() discards the in-progress object', async () => {
        const key = k('cancelled');
        const writer = await driver.writer(key, {});
        await writer.write(source(bytes(5000)));
        await writer.cancel();
        await rejectsWith(() => driver.stat(key), BlobNotFoundError, 'stat after cancel');
        const again = await other.writer(key, {});
        assert.equal(again.size, 0);
        await again.cancel();

        // Cancelling a resumed writer discards what earlier writers wrote too.
        const first = await driver.writer(key, {});
        await first.write(source(bytes(10)));
        const checkpoint = await first.close();
        const second = await other.writer(key, { resume: checkpoint });
        await second.write(source(bytes(10, 10)));
        await second.cancel();
        await rejectsWith(() => driver.writer(key, { resume: checkpoint }), InProgressLostError, 'resume after cancel');
        await rejectsWith(() => driver.stat(key), BlobNotFoundError, 'stat after cancel');
      });

      it('writer() without resume discards a previous in-progress object', async () => {
        const key = k('restart');
        const first = await driver.writer(key, {});
        await first.write(source(Buffer.from('stale data')));
        await first.close();
        const second = await other.writer(key, {});
        assert.equal(second.size, 0);
        await second.write(source(Buffer.from('fresh')));
        await second.commit();
        assert.deepEqual(await driver.get(key), Buffer.from('fresh'));
        await driver.delete(key);
      });

      it('resuming from a checkpoint drops bytes written after it (a PATCH cut short)', async () => {
        const key = k('cut-short');
        const first = await driver.writer(key, {});
        await first.write(source(bytes(1000)));
        const cp1 = await first.close();
        assert.equal(cp1.size, 1000);
        // A later PATCH writes more, then its process dies: it never closes, and the owner keeps cp1.
        const abandoned = await other.writer(key, { resume: cp1 });
        assert.equal(await abandoned.write(source(bytes(MiB + 5, 1000))), MiB + 5);
        const resumed = await driver.writer(key, { resume: cp1 });
        assert.equal(resumed.size, cp1.size, 'the resumed writer starts at the checkpoint');
        await resumed.commit();
        assert.equal((await driver.stat(key)).size, cp1.size);
        assert.deepEqual(await driver.get(key), bytes(1000), "only the checkpoint's bytes are committed");
        // Free what the abandoned writer holds (a dead process's descriptors go with it); the delete
        // below removes anything it stores on the way out.
        await abandoned.close().catch(() => undefined);
        await driver.delete(key);
      });

      it('resuming after the in-progress object was deleted throws InProgressLostError', async () => {
        const key = k('lost');
        const writer = await driver.writer(key, {});
        await writer.write(source(bytes(2000)));
        const checkpoint = await writer.close();
        assert.ok(checkpoint.size > 0);
        await driver.delete(key);
        await rejectsWith(() => driver.writer(key, { resume: checkpoint }), InProgressLostError, 'resume after delete');
        await rejectsWith(() => other.writer(key, { resume: checkpoint }), InProgressLostError, 'resume after delete (other)');
        await rejectsWith(() => driver.stat(key), BlobNotFoundError, 'stat after delete');
      });

      it('aborting write() rejects, hides the data and leaves a resumable object', async () => {
        const key = k('aborted');
        const writer = await driver.writer(key, {});
        await writer.write(source(bytes(100)));
        const controller = new AbortController();
        await assert.rejects(writer.write(abortingSource(3 * MiB, controller), controller.signal));
        assert.ok(controller.signal.aborted);
        await rejectsWith(() => driver.stat(key), BlobNotFoundError, 'stat after abort');
        assert.deepEqual(await collect(driver.list(prefix)), []);
        const kept = writer.size;
        assert.ok(kept >= 100 && kept <= 100 + 3 * MiB, `size after abort is plausible: ${kept}`);
        const checkpoint = await writer.close();
        assert.equal(checkpoint.size, kept, 'the checkpoint keeps what the aborted writer stored');

        const resumed = await other.writer(key, { resume: checkpoint });
        assert.equal(resumed.size, kept, 'a resumed writer starts where the aborted one stopped');
        await resumed.write(source(Buffer.from('tail')));
        await resumed.commit();
        const stored = await driver.get(key);
        assert.equal(stored.length, kept + 4);
        assert.deepEqual(stored.subarray(0, 100), bytes(100));
        assert.deepEqual(stored.subarray(100, kept), bytes(kept - 100), 'kept bytes are a prefix of what was sent');
        assert.deepEqual(stored.subarray(kept), Buffer.from('tail'));
        await driver.delete(key);
      });

      it('a writer aborted by a pre-aborted signal can be cancelled', async () => {
        const key = k('aborted-early');
        const writer = await driver.writer(key, {});
        await assert.rejects(writer.write(source(bytes(1000)), AbortSignal.abort()));
        await rejectsWith(() => driver.stat(key), BlobNotFoundError, 'stat after abort');
        await writer.cancel();
        const again = await driver.writer(key, {});
        assert.equal(again.size, 0);
        await again.cancel();
      });

      it('runs two writers for different keys concurrently', async () => {
        const a = await driver.writer(k('concurrent/a'), {});
        const b = await other.writer(k('concurrent/b'), {});
        const srcA = generate(2 * MiB + 3, 0);
        const srcB = generate(MiB + 5, 12_345);
        assert.deepEqual(await Promise.all([a.write(srcA.stream), b.write(srcB.stream)]), [2 * MiB + 3, MiB + 5]);
        await Promise.all([a.commit(), b.commit()]);
        assert.deepEqual(await hashAll(await driver.reader(k('concurrent/a'))), { digest: srcA.digest(), size: 2 * MiB + 3 });
        assert.deepEqual(await hashAll(await driver.reader(k('concurrent/b'))), { digest: srcB.digest(), size: MiB + 5 });
        await driver.delete(k('concurrent'));
      });
    });

    describe('readers', () => {
      it('serves many concurrent readers of one object', async () => {
        const key = k('shared');
        const data = bytes(MiB + 1);
        await driver.put(key, data);
        const expected = createHash('sha256').update(data).digest('hex');
        const readers = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? driver : other).reader(key, i === 7 ? { start: 3 } : {})));
        const results = await Promise.all(readers.map(hashAll));
        for (const [i, result] of results.entries()) {
          if (i === 7) assert.equal(result.size, MiB - 2);
          else assert.deepEqual(result, { digest: expected, size: MiB + 1 });
        }
        await driver.delete(key);
      });

      it('stops a reader whose signal is aborted', async () => {
        const key = k('abort-read');
        await driver.put(key, bytes(100));
        await assert.rejects(async () => readAll(await driver.reader(key, { signal: AbortSignal.abort() })));
        const controller = new AbortController();
        const stream = await driver.reader(key, { signal: controller.signal });
        controller.abort();
        await assert.rejects(readAll(stream));
        assert.deepEqual(await driver.get(key), bytes(100), 'the object is untouched');
        await driver.delete(key);
      });
    });

    // Drivers without a sender (memory) register none of these tests, rather than skipping them.
    const ifSender = (title: string, body: () => void): void => {
      if (features.sender) describe(title, body);
    };
    ifSender('senders', () => {
      // Over two send buffers (1 MiB on the filesystem and S3), with a tail that fills neither.
      const size = 2 * MiB + 17;

      it('sends an object or a range of it, and fails at open for a missing object or a bad offset', async () => {
        assert.ok(driver.openSender, 'the driver offers a sender');
        const key = k('sent');
        const data = bytes(size);
        await driver.put(key, data);
        const send = async (options: { start?: number; end?: number }): Promise<Buffer> => {
          const { sent, sender } = await sendAll(driver, key, options);
          assert.equal(sender.size, size, 'the whole object size is known at open');
          return sent;
        };
        assert.deepEqual(await send({}), data);
        assert.deepEqual(await send({ start: 5 }), data.subarray(5));
        assert.deepEqual(await send({ start: 5, end: 5 }), data.subarray(5, 6));
        assert.deepEqual(await send({ start: 0, end: 0 }), data.subarray(0, 1));
        assert.deepEqual(await send({ start: MiB - 3, end: 2 * MiB + 3 }), data.subarray(MiB - 3, 2 * MiB + 4), 'across buffer boundaries');
        assert.deepEqual(await send({ start: size - 1 }), data.subarray(size - 1));
        assert.deepEqual(await send({ start: 1000, end: size + 1000 }), data.subarray(1000), 'end is clamped');
        assert.deepEqual(await send({ start: size }), Buffer.alloc(0), 'start at the end sends nothing');
        await rejectsWith(() => sendAll(driver, key, { start: size + 1 }), InvalidOffsetError, 'start past end');
        await rejectsWith(() => sendAll(driver, key, { start: -1 }), InvalidOffsetError, 'negative start');
        await rejectsWith(() => sendAll(driver, key, { start: 10, end: 5 }), InvalidOffsetError, 'end before start');
        await rejectsWith(() => sendAll(driver, k('missing'), {}), BlobNotFoundError, 'missing object');
        await driver.put(k('empty'), Buffer.alloc(0));
        assert.deepEqual((await sendAll(driver, k('empty'), {})).sent, Buffer.alloc(0), 'an empty object');
        await driver.delete(key);
        await driver.delete(k('empty'));
      });

      it('shows every byte to the check before the last one is written, and a failing check keeps it unsent', async () => {
        assert.ok(driver.openSender, 'the driver offers a sender');
        const key = k('checked');
        const data = bytes(size);
        await driver.put(key, data);
        const seen = createHash('sha256');
        let seenBytes = 0;
        let writtenAtCheck = -1;
        const dest = new Collector();
        const check = {
          update: (chunk: Buffer) => {
            seen.update(chunk);
            seenBytes += chunk.length;
          },
          beforeLast: () => {
            writtenAtCheck = dest.size;
          },
        };
        const { sent } = await sendAll(driver, key, {}, check, dest);
        assert.deepEqual(sent, data);
        assert.equal(seenBytes, size);
        assert.equal(seen.digest('hex'), createHash('sha256').update(data).digest('hex'));
        assert.ok(writtenAtCheck >= 0 && writtenAtCheck < size, `the check ran with ${writtenAtCheck} of ${size} bytes written`);

        const refused = new Collector();
        const failing = {
          update: () => undefined,
          beforeLast: () => {
            throw new Error('digest mismatch');
          },
        };
        await assert.rejects(sendAll(driver, key, {}, failing, refused), /digest mismatch/);
        assert.ok(refused.size < size, 'the last chunk was not sent');
        await driver.delete(key);
      });

      it('stops a send whose signal aborts, and the object can be sent again', async () => {
        assert.ok(driver.openSender, 'the driver offers a sender');
        const openSender = driver.openSender.bind(driver);
        const key = k('abort-send');
        const data = bytes(size);
        await driver.put(key, data);
        const controller = new AbortController();
        // A destination that takes one chunk and then aborts, like a client that goes away.
        const dest = new Collector(() => controller.abort());
        const sender = await openSender(key);
        try {
          await assert.rejects(sender.sendTo(dest, controller.signal));
        } finally {
          await sender.close();
        }
        assert.ok(dest.size < size, `${dest.size} of ${size} bytes went out`);
        assert.deepEqual((await sendAll(driver, key, {})).sent, data);
        await driver.delete(key);
      });
    });

    describe('move', () => {
      it('moves an object to a new key, creating parents', async () => {
        await driver.put(k('src'), Buffer.from('payload'));
        await driver.move(k('src'), k('deep/er/dst'));
        assert.deepEqual(await driver.get(k('deep/er/dst')), Buffer.from('payload'));
        await rejectsWith(() => driver.stat(k('src')), BlobNotFoundError, 'source after move');
        assert.deepEqual(await collect(driver.list(prefix)), [k('deep/er/dst')]);
        await driver.delete(k('deep/er/dst'));
      });

      it('overwrites an existing target', async () => {
        await driver.put(k('src'), Buffer.from('new'));
        await driver.put(k('dst'), Buffer.from('old and longer'));
        await driver.move(k('src'), k('dst'));
        assert.deepEqual(await driver.get(k('dst')), Buffer.from('new'));
        assert.equal((await driver.stat(k('dst'))).size, 3);
        assert.deepEqual(await collect(driver.list(prefix)), [k('dst')]);
        await driver.delete(k('dst'));
      });

      it('moves a committed streamed object', async () => {
        const writer = await driver.writer(k('upload/data'), {});
        const src = generate(MiB + 9);
        await writer.write(src.stream);
        await writer.commit();
        await other.move(k('upload/data'), k('blobs/final'));
        assert.deepEqual(await hashAll(await driver.reader(k('blobs/final'))), { digest: src.digest(), size: MiB + 9 });
        await driver.delete(k('blobs'));
        await driver.delete(k('upload'));
      });

      it('lets two concurrent moves land on the same target (the same blob pushed twice)', async () => {
        const data = bytes(300_000);
        await driver.put(k('upload-1/data'), data);
        await driver.put(k('upload-2/data'), data);
        await Promise.all([driver.move(k('upload-1/data'), k('blob')), other.move(k('upload-2/data'), k('blob'))]);
        assert.deepEqual(await driver.get(k('blob')), data);
        assert.deepEqual(await collect(driver.list(prefix)), [k('blob')]);
        await driver.delete(k('blob'));
      });

      it('throws BlobNotFoundError for a missing source and leaves the target alone', async () => {
        await driver.put(k('dst'), Buffer.from('keep'));
        await rejectsWith(() => driver.move(k('missing'), k('dst')), BlobNotFoundError, 'move of missing');
        await rejectsWith(() => driver.move(k('missing'), k('other')), BlobNotFoundError, 'move of missing');
        assert.deepEqual(await driver.get(k('dst')), Buffer.from('keep'));
        // An in-progress object is not a committed one.
        const writer = await driver.writer(k('pending'), {});
        await writer.write(source(Buffer.from('p')));
        await writer.close();
        await rejectsWith(() => driver.move(k('pending'), k('other')), BlobNotFoundError, 'move of in-progress');
        await driver.delete(k('pending'));
        await driver.delete(k('dst'));
      });
    });

    describe('delete', () => {
      it('deletes a key and everything under it, not siblings sharing a name prefix', async () => {
        const doomed = [k('a/b/c'), k('a/b/d/e'), k('a/b/.hidden')];
        const kept = [k('a/bc'), k('a/b-x'), k('a/b.c/d'), k('a/ab'), k('ab')];
        for (const key of [...doomed, ...kept]) await driver.put(key, Buffer.from(key));
        await driver.delete(k('a/b'));
        for (const key of doomed) await rejectsWith(() => driver.stat(key), BlobNotFoundError, `stat ${key}`);
        for (const key of kept) assert.deepEqual(await driver.get(key), Buffer.from(key));
        assert.deepEqual(await collect(driver.list(prefix)), [...kept].sort());
        for (const key of kept) await driver.delete(key);
      });

      it('deletes a single object without touching name-prefix siblings', async () => {
        await driver.put(k('x/b'), Buffer.from('1'));
        await driver.put(k('x/bc'), Buffer.from('2'));
        await driver.put(k('x/b.old'), Buffer.from('3'));
        await driver.delete(k('x/b'));
        await rejectsWith(() => driver.get(k('x/b')), BlobNotFoundError, 'deleted object');
        assert.deepEqual(await collect(driver.list(prefix)), [k('x/b.old'), k('x/bc')]);
        await driver.delete(k('x/bc'));
        await driver.delete(k('x/b.old'));
      });

      it('deletes in-progress objects at and under the key', async () => {
        const top = await driver.writer(k('up/one'), {});
        await top.write(source(bytes(50)));
        const topCheckpoint = await top.close();
        const nested = await driver.writer(k('up/two/data'), {});
        await nested.write(source(bytes(60)));
        const nestedCheckpoint = await nested.close();
        const sibling = await driver.writer(k('upx'), {});
        await sibling.write(source(bytes(70)));
        const siblingCheckpoint = await sibling.close();
        await other.delete(k('up'));
        for (const [key, checkpoint] of [
          [k('up/one'), topCheckpoint],
          [k('up/two/data'), nestedCheckpoint],
        ] as const) {
          await rejectsWith(() => driver.writer(key, { resume: checkpoint }), InProgressLostError, `in-progress ${key} deleted`);
        }
        const survivor = await driver.writer(k('upx'), { resume: siblingCheckpoint });
        assert.equal(survivor.size, 70, 'sibling in-progress object kept');
        await survivor.cancel();
      });

      it('treats deleting a missing key as success', async () => {
        await driver.delete(k('never/existed'));
        await driver.delete(k('never/existed'));
      });
    });

    describe('deleteMany', () => {
      it('deletes the objects at the keys, counting missing ones as deleted, each key once', async () => {
        const doomed = [k('m/a'), k('m/b/c'), k('m/d')];
        const kept = [k('m/ab'), k('m/b/cd'), k('m/b/c.x'), k('m-other')];
        for (const key of [...doomed, ...kept]) await driver.put(key, Buffer.from(key));
        const result = await other.deleteMany([k('m/a'), k('m/b/c'), k('m/missing'), k('m/a'), k('m/d')]);
        assert.deepEqual(result, { deleted: [k('m/a'), k('m/b/c'), k('m/missing'), k('m/d')], failed: [] });
        for (const key of doomed) await rejectsWith(() => driver.stat(key), BlobNotFoundError, `stat ${key}`);
        assert.deepEqual(await collect(driver.list(prefix)), [...kept].sort());
        assert.deepEqual(await driver.deleteMany(doomed), { deleted: doomed, failed: [] }, 'deleting again succeeds');
        for (const key of kept) await driver.delete(key);
      });

      it('deletes nothing for an empty list', async () => {
        assert.deepEqual(await driver.deleteMany([]), { deleted: [], failed: [] });
      });

      it('deletes committed objects only: never what lies under the key, nor an in-progress writer at it', async () => {
        await driver.put(k('dir/child'), Buffer.from('child'));
        await driver.put(k('both'), Buffer.from('committed'));
        const writer = await driver.writer(k('both'), {});
        await writer.write(source(bytes(3000)));
        const checkpoint = await writer.close();
        const result = await driver.deleteMany([k('dir'), k('both')]);
        assert.deepEqual(result, { deleted: [k('dir'), k('both')], failed: [] }, 'a prefix holds no object: nothing to delete');
        assert.deepEqual(await driver.get(k('dir/child')), Buffer.from('child'));
        await rejectsWith(() => driver.stat(k('both')), BlobNotFoundError, 'the committed object');
        const resumed = await other.writer(k('both'), { resume: checkpoint });
        assert.equal(resumed.size, 3000, 'the in-progress object at the key is untouched');
        await resumed.cancel();
        await driver.delete(k('dir'));
      });

      it('deletes across batch boundaries (2,345 keys, a few of them stored)', async () => {
        const keys = Array.from({ length: 2345 }, (_, i) => k(`many/${i}`));
        const stored = [0, 999, 1000, 1001, 1999, 2000, 2344].map((i) => keys[i] as string);
        for (const key of stored) await driver.put(key, Buffer.from(key));
        const result = await driver.deleteMany(keys);
        assert.deepEqual(result.failed, []);
        assert.deepEqual(result.deleted, keys);
        assert.deepEqual(await collect(driver.list(prefix)), []);
      });
    });

    describe('list', () => {
      it('lists committed keys under a prefix, recursively', async () => {
        const inside = [k('l/x'), k('l/y/z'), k('l/y/w'), k('l/deep/er/est')];
        const outside = [k('lx/q'), k('l-other')];
        for (const key of [...inside, ...outside]) await driver.put(key, Buffer.from('.'));
        const pending = await driver.writer(k('l/pending'), {});
        await pending.write(source(Buffer.from('not yet')));
        await pending.close();

        assert.deepEqual(await collect(driver.list(k('l'))), [...inside].sort());
        assert.deepEqual(await collect(other.list(k('l/y'))), [k('l/y/w'), k('l/y/z')]);
        assert.deepEqual(await collect(driver.list(k('nothing/here'))), []);
        assert.deepEqual(await collect(driver.list(prefix)), [...inside, ...outside].sort());

        await driver.delete(k('l/pending'));
        for (const key of [...inside, ...outside]) await driver.delete(key);
      });
    });

    describe('sweep', () => {
      it('never sweeps an in-progress object whose key is live, however old, and sweeps it once it is not', async (t) => {
        const sweep = driver.sweep?.bind(driver);
        if (sweep === undefined) {
          t.skip(`${driver.name} has no sweep()`);
          return;
        }
        const live = k('sweep/live');
        const dead = k('sweep/dead');
        const open = async (key: string, length: number): Promise<WriterCheckpoint> => {
          const writer = await driver.writer(key, {});
          await writer.write(source(bytes(length)));
          return writer.close();
        };
        const liveCheckpoint = await open(live, 3000);
        const deadCheckpoint = await open(dead, 4000);
        await driver.put(k('sweep/committed'), Buffer.from('kept'));
        // A cutoff in the future: everything in progress counts as idle for longer than allowed.
        const future = new Date(Date.now() + 60_000);

        const asked: string[] = [];
        const removed = await sweep(future, async (key) => {
          asked.push(key);
          return key === live;
        });
        assert.ok(removed >= 1, `the idle object nothing owns is swept (removed ${removed})`);
        assert.ok(asked.includes(live), `isLive was asked about ${live}: ${JSON.stringify(asked)}`);
        const kept = await other.writer(live, { resume: liveCheckpoint });
        assert.equal(kept.size, 3000, 'a live in-progress object is never swept');
        const keptCheckpoint = await kept.close();
        await rejectsWith(() => driver.writer(dead, { resume: deadCheckpoint }), InProgressLostError, 'resume of a swept object');

        assert.ok((await sweep(future, async () => false)) >= 1, 'once not live, the object is swept');
        await rejectsWith(() => driver.writer(live, { resume: keptCheckpoint }), InProgressLostError, 'resume once swept');
        if (fixture.rawKeys) {
          const raw = (await fixture.rawKeys()).filter((key) => key.includes(prefix));
          assert.deepEqual(
            raw.filter((key) => !key.endsWith('sweep/committed')),
            [],
            'sweep leaves nothing in progress behind',
          );
        }
        assert.deepEqual(await driver.get(k('sweep/committed')), Buffer.from('kept'), 'committed objects are never swept');
        await driver.delete(k('sweep'));
      });
    });

    describe('compose', () => {
      // Through composeParts: the driver's own compose where it has one, the streaming fallback otherwise.
      async function writeParts(sizes: number[]): Promise<{ keys: string[]; whole: Buffer }> {
        const keys: string[] = [];
        let offset = 0;
        for (const [i, size] of sizes.entries()) {
          const key = k(`compose/part-${i}`);
          const writer = await driver.writer(key, {});
          await writer.write(source(bytes(size, offset)));
          await writer.commit();
          keys.push(key);
          offset += size;
        }
        return { keys, whole: bytes(offset) };
      }

      it('concatenates parts S3 could copy as parts (5 MiB and more but the last), leaving the parts', async () => {
        const { keys, whole } = await writeParts([5 * MiB, 5 * MiB + 3, 1234]);
        await composeParts(driver, keys, k('compose/whole'));
        assert.equal((await other.stat(k('compose/whole'))).size, whole.length);
        const read = await hashAll(await other.reader(k('compose/whole')));
        assert.equal(read.digest, createHash('sha256').update(whole).digest('hex'), 'the parts in order');
        for (const key of keys) assert.equal((await driver.stat(key)).size > 0, true, `part ${key} stays`);
        await driver.delete(k('compose'));
      });

      it('concatenates small parts, replacing what was at the target', async () => {
        const { keys, whole } = await writeParts([10, 1, 70_000]);
        await driver.put(k('compose/whole'), Buffer.from('old'));
        await composeParts(driver, keys, k('compose/whole'));
        assert.deepEqual(await readAll(await other.reader(k('compose/whole'))), whole);
        await driver.delete(k('compose'));
      });

      it('writes nothing at the target when a part is missing', async () => {
        const { keys } = await writeParts([5 * MiB, 10]);
        await assert.rejects(composeParts(driver, [...keys, k('compose/missing')], k('compose/whole')), BlobNotFoundError);
        await rejectsWith(() => driver.stat(k('compose/whole')), BlobNotFoundError, 'no object at the target');
        await driver.delete(k('compose'));
      });
    });

    describe('health', () => {
      it('answers ping()', async () => {
        await driver.ping();
      });
    });
  });
}
