// Upload parts and sends on S3 draw on one pool of large buffers bounded by bytes (storage.s3.bufferPoolBytes):
// parts are copied into it instead of holding the request's socket chunks, and an upload whose part is
// still in flight waits for that part's buffers instead of allocating past the budget.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { IoBufferPool } from '../../storage-drivers/blob/io-buffers.js';
import { PartBuffer } from '../../storage-drivers/blob/s3-part-buffer.js';
import { createS3Driver, type S3BlobDriver } from '../../storage-drivers/blob/s3.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';
import { MiB, patternAt, patternStream, sha256Of } from './s3-fixtures.js';

const KiB = 1024;

describe('PartBuffer', () => {
  it('copies what it is given, across buffers, in order', () => {
    const pool = new IoBufferPool(64 * KiB, 256 * KiB, 4 * KiB);
    const part = new PartBuffer(pool);
    const input = patternAt(0, 150 * KiB);
    const piece = Buffer.from(input.subarray(0, 100 * KiB));
    part.append(piece);
    piece.fill(0); // the caller reuses its buffer at once
    part.append(input.subarray(100 * KiB));
    assert.equal(part.length, 150 * KiB);
    assert.ok(part.fits(42 * KiB) && !part.fits(42 * KiB + 1), 'the last buffer has 192 - 150 KiB left');
    assert.deepEqual(Buffer.concat(part.views()), input);
    assert.equal(pool.heldBytes, 192 * KiB);
  });

  it('gives its buffers back to the pool, or out of it once a send from them failed', () => {
    const pool = new IoBufferPool(64 * KiB, 128 * KiB, 4 * KiB);
    const part = new PartBuffer(pool);
    part.append(patternAt(0, 100 * KiB));
    const held = new Set(part.views().map((view) => view.buffer));
    part.release();
    assert.equal(part.length, 0);
    const again = new PartBuffer(pool);
    again.append(patternAt(0, KiB));
    assert.ok(held.has(again.views()[0]?.buffer as ArrayBufferLike), 'a released buffer is lent again');
    again.taint();
    again.release();
    assert.equal(pool.heldBytes, 64 * KiB, 'the tainted buffer left the pool');
    assert.equal(pool.lentPastBudget, 0);
  });
});

describe('S3 upload buffers on s3rver', () => {
  let server: S3rverHandle;
  let onePart: S3BlobDriver;
  let twoParts: S3BlobDriver;

  before(async () => {
    server = await startS3rver();
    onePart = createS3Driver(server.config({ prefix: 'one', partSizeBytes: 5 * MiB, bufferPoolBytes: 5 * MiB }));
    twoParts = createS3Driver(server.config({ prefix: 'two', partSizeBytes: 5 * MiB, bufferPoolBytes: 10 * MiB }));
  });
  after(async () => {
    await onePart.close();
    await twoParts.close();
    await server.stop();
  });

  /** A pattern stream that records the most the pool held while it was read. */
  function watched(driver: S3BlobDriver, offset: number, length: number, hash: ReturnType<typeof createHash>, peak: { bytes: number }) {
    return patternStream(offset, length, hash).pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          peak.bytes = Math.max(peak.bytes, driver.buffers.heldBytes);
          done(null, chunk);
        },
      }),
    );
  }

  it('an upload whose pool holds one part waits for the part in flight instead of allocating past it', { timeout: 60_000 }, async () => {
    const hash = createHash('sha256');
    const peak = { bytes: 0 };
    const writer = await onePart.writer('uploads/one/data', {});
    const size = 23 * MiB + 17;
    assert.equal(await writer.write(watched(onePart, 0, size, hash, peak)), size);
    await writer.commit();
    assert.deepEqual(await sha256Of(await onePart.reader('uploads/one/data')), { digest: hash.digest('hex'), size });
    assert.equal(onePart.buffers.lentPastBudget, 0, 'every part was gathered in pooled buffers');
    assert.ok(peak.bytes <= 5 * MiB, `the pool held at most its budget (peak ${peak.bytes})`);
  });

  it('four concurrent uploads over a pool of two parts store the exact bytes and keep to the budget', { timeout: 120_000 }, async () => {
    const peak = { bytes: 0 };
    const sizes = [12 * MiB + 1, 16 * MiB, 9 * MiB + 333, 21 * MiB];
    const results = await Promise.all(
      sizes.map(async (size, i) => {
        const hash = createHash('sha256');
        const key = `uploads/four-${i}/data`;
        const writer = await twoParts.writer(key, {});
        await writer.write(watched(twoParts, i * 7, size, hash, peak));
        await writer.commit();
        return { key, expected: { digest: hash.digest('hex'), size } };
      }),
    );
    for (const { key, expected } of results) assert.deepEqual(await sha256Of(await twoParts.reader(key)), expected);
    assert.ok(peak.bytes <= 10 * MiB, `the pool held at most its budget (peak ${peak.bytes})`);
  });

  it('a GET is sent through pooled buffers and hands them back', async () => {
    const size = 3 * MiB + 5;
    const written = createHash('sha256');
    const writer = await twoParts.writer('blobs/get/data', {});
    await writer.write(patternStream(0, size, written));
    const expected = written.digest('hex');
    await writer.commit();
    const before = twoParts.buffers.lentPastBudget;
    for (let i = 0; i < 3; i++) {
      const sender = await twoParts.openSender('blobs/get/data');
      const hash = createHash('sha256');
      let got = 0;
      const sink = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          got += chunk.length;
          done();
        },
      });
      await sender.sendTo(sink);
      await sender.close();
      assert.equal(got, size);
      assert.equal(hash.digest('hex'), expected);
    }
    assert.equal(twoParts.buffers.lentPastBudget, before, 'three GETs in a row reuse the same two buffers');
  });
});
