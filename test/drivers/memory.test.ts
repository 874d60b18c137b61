import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { runBlobDriverContract } from '../contract/blob-driver.contract.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';

runBlobDriverContract(
  'memory',
  async () => {
    const driver = new MemoryDriver();
    return { driver, cleanup: () => driver.close(), rawKeys: async () => driver.rawKeys() };
  },
  { sender: false },
);

describe('MemoryDriver', () => {
  it('sweeps in-progress objects idle since the cutoff that nothing owns, never committed ones', async () => {
    const driver = new MemoryDriver();
    const idle = await driver.writer('u/idle', {});
    await idle.close();
    const busy = await driver.writer('u/busy', {});
    await busy.write(Readable.from([Buffer.from('x')], { objectMode: false }));
    await driver.put('u/committed', Buffer.from('c'));
    const nobody = async (): Promise<boolean> => false;
    assert.equal(await driver.sweep(new Date(Date.now() - 60_000), nobody), 0, 'nothing is a minute old');
    assert.equal(await driver.sweep(new Date(Date.now() + 60_000), async (key) => key === 'u/busy'), 1, 'the owned one stays');
    assert.deepEqual(driver.rawKeys(), ['u/committed', 'inprogress:u/busy']);
    assert.equal(await driver.sweep(new Date(Date.now() + 60_000), nobody), 1);
    assert.deepEqual(driver.rawKeys(), ['u/committed']);
  });
});
