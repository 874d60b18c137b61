import { runBlobDriverContract } from '../contract/blob-driver.contract.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';

runBlobDriverContract('memory', async () => {
  const driver = new MemoryDriver();
  return { driver, cleanup: () => driver.close(), rawKeys: async () => driver.rawKeys() };
});
