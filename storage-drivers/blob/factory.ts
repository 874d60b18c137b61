import type { BerthConfig } from '../../server/config.js';
import { FilesystemDriver } from './filesystem.js';
import { MemoryDriver } from './memory.js';
import type { BlobDriver } from './types.js';

/** The configured blob driver (not yet checked for reachability: call ping()). */
export async function createBlobDriver(config: BerthConfig, paths: { storageRoot: string }): Promise<BlobDriver> {
  switch (config.storage.driver) {
    case 'filesystem':
      return new FilesystemDriver({ root: paths.storageRoot });
    case 'memory':
      return new MemoryDriver();
    case 's3':
      throw new Error('storage.driver s3 is not available yet');
  }
}
