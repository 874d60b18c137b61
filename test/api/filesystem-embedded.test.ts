import { join } from 'node:path';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { runApiSuite } from './api-suite.js';

runApiSuite('filesystem blobs + embedded metadata', async () => ({
  driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }),
}));
