import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { IoBufferPool } from '../../storage-drivers/blob/io-buffers.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

const MiB = 1024 * 1024;
const KiB = 1024;

describe('IoBufferPool', () => {
  it('lends pooled buffers up to its byte bound and small ones past it', () => {
    const pool = new IoBufferPool(MiB, 2 * MiB, 64 * KiB);
    const a = pool.acquire(8 * MiB);
    const b = pool.acquire(8 * MiB);
    assert.equal(a.length, MiB);
    assert.equal(b.length, MiB);
    assert.equal(pool.heldBytes, 2 * MiB);
    const past = pool.acquire(8 * MiB);
    assert.equal(past.length, 64 * KiB, 'past the bound: a small buffer, not a third pooled one');
    assert.equal(pool.heldBytes, 2 * MiB);
    pool.release(past);
    assert.equal(pool.heldBytes, 2 * MiB, 'a small buffer is not taken into the pool');
  });

  it('lends a released buffer again instead of allocating', () => {
    const pool = new IoBufferPool(MiB, 2 * MiB, 64 * KiB);
    const a = pool.acquire(4 * MiB);
    pool.release(a);
    assert.equal(pool.acquire(4 * MiB), a);
    assert.equal(pool.heldBytes, MiB);
  });

  it('gives a discarded buffer’s share of the bound to a new one, and never lends the discarded one', () => {
    const pool = new IoBufferPool(MiB, MiB, 64 * KiB);
    const a = pool.acquire(4 * MiB);
    pool.discard(a);
    assert.equal(pool.heldBytes, 0);
    pool.release(a);
    const b = pool.acquire(4 * MiB);
    assert.notEqual(b, a);
    assert.equal(b.length, MiB);
  });

  it('answers a read that needs little with a buffer of that size, outside the pool', () => {
    const pool = new IoBufferPool(MiB, 2 * MiB, 64 * KiB);
    assert.equal(pool.acquire(5000).length, 5000);
    assert.equal(pool.heldBytes, 0);
  });
});

/** A destination that takes its time with every chunk and keeps a copy, as a socket copies into the kernel. */
function slowSink(): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 16 * KiB,
    write(chunk: Buffer, _encoding, done) {
      chunks.push(Buffer.from(chunk));
      setImmediate(done);
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

describe('filesystem senders share a bounded pool of read buffers', () => {
  let scratch: ScratchDir;
  let driver: FilesystemDriver;
  const blobs = new Map<string, Buffer>();

  before(async () => {
    scratch = await makeScratchDir('io-buffers');
    driver = new FilesystemDriver({ root: join(scratch.path, 'root'), sendBufferBytes: 3 * MiB });
    for (let i = 0; i < 6; i++) {
      const data = randomBytes(3 * MiB + 1234 * i);
      blobs.set(`blobs/b${i}`, data);
      await driver.put(`blobs/b${i}`, data);
    }
  });

  after(async () => {
    await driver.close();
    await scratch.remove();
  });

  it('sends six 3 MiB blobs at once, every byte right, holding no more than the bound', async () => {
    let peak = 0;
    const watch = setInterval(() => (peak = Math.max(peak, driver.sendBuffers.heldBytes)), 1);
    try {
      await Promise.all(
        [...blobs].map(async ([key, data]) => {
          const sender = await driver.openSender(key);
          const { sink, bytes } = slowSink();
          try {
            await sender.sendTo(sink);
          } finally {
            await sender.close();
          }
          assert.ok(bytes().equals(data), `${key}: the bytes sent differ from the blob`);
        }),
      );
    } finally {
      clearInterval(watch);
    }
    peak = Math.max(peak, driver.sendBuffers.heldBytes);
    assert.ok(peak <= 3 * MiB, `pooled buffers held ${peak} bytes, over the 3 MiB bound`);
    assert.equal(driver.sendBuffers.heldBytes, 3 * MiB, 'the pooled buffers are kept for the next GETs');
  });

  it('drops the buffers of a send cut short instead of lending them again', async () => {
    const before = driver.sendBuffers.heldBytes;
    const sender = await driver.openSender('blobs/b5');
    const sink = new Writable({
      write(_chunk, _encoding, done) {
        // The client leaves after the first chunk.
        sink.destroy();
        done();
      },
    });
    await assert.rejects(sender.sendTo(sink));
    await sender.close();
    assert.equal(driver.sendBuffers.heldBytes, before - 2 * MiB);
  });
});
