import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { runBlobDriverContract } from '../contract/blob-driver.contract.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { instrument, type BlobOperation } from '../../storage-drivers/blob/instrumented.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import { BlobNotFoundError, InvalidKeyError, StorageUnavailableError } from '../../storage-drivers/blob/types.js';

runBlobDriverContract(
  'instrumented memory',
  async () => {
    const inner = new MemoryDriver();
    const driver = instrument(inner, () => {});
    return { driver, cleanup: () => driver.close(), rawKeys: async () => inner.rawKeys() };
  },
  { sender: false },
);

describe('instrument()', () => {
  it('reports every operation with its duration and error class', async () => {
    const seen: BlobOperation[] = [];
    const driver = instrument(new MemoryDriver(), (op) => seen.push(op));
    await driver.put('a/b', Buffer.from('x'));
    await assert.rejects(driver.get('a/missing'), BlobNotFoundError);
    await assert.rejects(driver.stat('../escape'), InvalidKeyError);
    const writer = await driver.writer('a/up', {});
    assert.equal(await writer.write(Readable.from([Buffer.from('12345')], { objectMode: false })), 5);
    assert.equal(writer.size, 5);
    await writer.commit();
    const keys: string[] = [];
    for await (const key of driver.list('a')) keys.push(key);
    assert.deepEqual(keys.sort(), ['a/b', 'a/up']);
    assert.deepEqual(await driver.deleteMany(['a/b', 'a/none']), { deleted: ['a/b', 'a/none'], failed: [] });
    await assert.rejects(driver.deleteMany(['a/up', 'a/../up']), InvalidKeyError);
    assert.equal((await driver.stat('a/up')).size, 5, 'nothing is deleted when one key is invalid');
    await driver.delete('a');

    assert.deepEqual(
      seen.map(({ op, error, bytes }) => ({ op, error, bytes })),
      [
        { op: 'put', error: undefined, bytes: undefined },
        { op: 'get', error: 'BlobNotFoundError', bytes: undefined },
        { op: 'stat', error: 'InvalidKeyError', bytes: undefined },
        { op: 'writer', error: undefined, bytes: undefined },
        { op: 'writer.write', error: undefined, bytes: 5 },
        { op: 'writer.commit', error: undefined, bytes: undefined },
        { op: 'list', error: undefined, bytes: undefined },
        { op: 'deleteMany', error: undefined, bytes: undefined },
        { op: 'deleteMany', error: 'InvalidKeyError', bytes: undefined },
        { op: 'stat', error: undefined, bytes: undefined },
        { op: 'delete', error: undefined, bytes: undefined },
      ],
    );
    for (const op of seen) {
      assert.equal(op.driver, 'memory');
      assert.ok(op.seconds >= 0 && op.seconds < 10);
    }
  });

  it('maps unexpected backend errors to StorageUnavailableError, keeping the cause', async () => {
    const scratch = await makeScratchDir('instrumented');
    try {
      const file = join(scratch.path, 'file');
      await writeFile(file, '');
      const seen: BlobOperation[] = [];
      // A root below a regular file: every write fails with ENOTDIR from the OS.
      const driver = instrument(new FilesystemDriver({ root: join(file, 'root') }), (op) => seen.push(op));
      const err: unknown = await driver.put('k', Buffer.from('x')).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof StorageUnavailableError, String(err));
      assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOTDIR');
      assert.deepEqual(
        seen.map((op) => op.error),
        ['StorageUnavailableError'],
      );
    } finally {
      await scratch.remove();
    }
  });

  it("passes a failing source stream's own error through, not as a storage failure", async () => {
    const seen: BlobOperation[] = [];
    const driver = instrument(new MemoryDriver(), (op) => seen.push(op));
    const writer = await driver.writer('k', {});
    const gone = new Error('client went away');
    const src = new Readable({
      read() {
        this.destroy(gone);
      },
    });
    await assert.rejects(writer.write(src), (err: unknown) => err === gone);
    await writer.cancel();
    assert.equal(seen.find((op) => op.op === 'writer.write')?.error, 'Error');
  });

  it('survives an observer that throws', async () => {
    const driver = instrument(new MemoryDriver(), () => {
      throw new Error('metrics broke');
    });
    await driver.put('k', Buffer.from('v'));
    assert.deepEqual(await driver.get('k'), Buffer.from('v'));
  });

  it('passes optional members through only when the driver has them', async () => {
    const seen: BlobOperation[] = [];
    const driver = instrument(new MemoryDriver(), (op) => seen.push(op));
    assert.equal(driver.redirectUrl, undefined);
    assert.equal(await driver.sweep?.(new Date(), async () => false), 0);
    assert.deepEqual(
      seen.map((op) => op.op),
      ['sweep'],
    );
  });

  it("passes sweep()'s isLive through to the driver and returns writer checkpoints", async () => {
    const driver = instrument(new MemoryDriver(), () => {});
    const writer = await driver.writer('s/live', {});
    await writer.write(Readable.from([Buffer.from('abc')], { objectMode: false }));
    const checkpoint = await writer.close();
    assert.equal(checkpoint.size, 3);
    const future = new Date(Date.now() + 60_000);
    const asked: string[] = [];
    assert.equal(await driver.sweep?.(future, async (key) => (asked.push(key), true)), 0);
    assert.deepEqual(asked, ['s/live']);
    assert.equal((await driver.writer('s/live', { resume: checkpoint })).size, 3);
    assert.equal(await driver.sweep?.(future, async () => false), 1);
  });
});
