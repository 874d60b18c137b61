import { FilesystemDriver } from './filesystem.js';
import { MemoryDriver } from './memory.js';
import type { S3Config } from './s3-config.js';
import { createS3Driver } from './s3.js';
import type { BlobDriver } from './types.js';

/** The part of Berth's configuration (`storage`) the blob factory reads. */
export interface BlobStorageConfig {
  driver: 'filesystem' | 'memory' | 's3';
  s3?: S3Config | undefined;
  filesystem?: { sendBufferBytes?: number | undefined } | undefined;
}

/**
 * The configured blob driver, bare: not yet checked for reachability (call ping()) and without the
 * key checks and error naming of `instrument`, which server/storage-stack.ts adds.
 */
export function createBlobDriver(config: BlobStorageConfig, paths: { storageRoot: string }): BlobDriver {
  switch (config.driver) {
    case 'filesystem':
      return new FilesystemDriver({
        root: paths.storageRoot,
        ...(config.filesystem?.sendBufferBytes === undefined ? {} : { sendBufferBytes: config.filesystem.sendBufferBytes }),
      });
    case 'memory':
      return new MemoryDriver();
    case 's3':
      if (!config.s3) throw new Error('storage.driver is s3 but storage.s3 (bucket, endpoint, …) is not configured');
      return createS3Driver(config.s3);
  }
}
