import type { BerthConfig } from '../../server/config.js';
import { FilesystemDriver } from './filesystem.js';
import { MemoryDriver } from './memory.js';
import { createS3Driver } from './s3.js';
import type { BlobDriver } from './types.js';

/** The configured blob driver (not yet checked for reachability: call ping()). */
export function createBlobDriver(config: BerthConfig, paths: { storageRoot: string }): BlobDriver {
  switch (config.storage.driver) {
    case 'filesystem':
      return new FilesystemDriver({ root: paths.storageRoot });
    case 'memory':
      return new MemoryDriver();
    case 's3':
      if (!config.storage.s3) throw new Error('storage.driver is s3 but storage.s3 (bucket, endpoint, …) is not configured');
      return createS3Driver(config.storage.s3);
  }
}
