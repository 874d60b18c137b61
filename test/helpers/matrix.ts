// The storage × metadata matrix: every blob driver with every metadata store, as each is deployed
// (s3 + embedded is the usual single node, filesystem + redis many processes on a shared volume).
// The suites that must hold on every deployment run once per pair, one test file per pair
// (test/api/<blob>-<metadata>.test.ts) so the runner spreads the pairs over its workers.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import { startRedisServer, type RedisServer } from './redis-server.js';
import type { TestRegistryOptions } from './registry.js';
import { startS3rver, type S3rverHandle } from './s3rver.js';

export const BLOB_KINDS = ['memory', 'filesystem', 's3'] as const;
export const METADATA_KINDS = ['embedded', 'redis'] as const;
export type BlobKind = (typeof BLOB_KINDS)[number];
export type MetadataKind = (typeof METADATA_KINDS)[number];

export interface StoragePair {
  blob: BlobKind;
  metadata: MetadataKind;
  /** `<blob>-<metadata>`, also the name of the pair's test file. */
  id: string;
  /** For suite titles. */
  title: string;
}

const BLOB_TITLES: Record<BlobKind, string> = { memory: 'memory blobs', filesystem: 'filesystem blobs', s3: 'S3 blobs (s3rver)' };
const METADATA_TITLES: Record<MetadataKind, string> = { embedded: 'embedded metadata', redis: 'Redis metadata' };

export const STORAGE_PAIRS: readonly StoragePair[] = BLOB_KINDS.flatMap((blob) =>
  METADATA_KINDS.map((metadata) => ({ blob, metadata, id: `${blob}-${metadata}`, title: `${BLOB_TITLES[blob]} + ${METADATA_TITLES[metadata]}` })),
);

export interface PairEnvironment {
  pair: StoragePair;
  /** Options for startTestRegistry: a fresh bucket prefix / key prefix each call, so registries in one file never share state. */
  options(): Promise<TestRegistryOptions>;
}

/**
 * The pair's servers for one test file: s3rver and redis-server start on first use (only if the pair
 * needs them) and stop when the file's tests are done. Memory and embedded are the registry's defaults.
 */
export function usePair(blob: BlobKind, metadata: MetadataKind): PairEnvironment {
  const pair = STORAGE_PAIRS.find((p) => p.blob === blob && p.metadata === metadata);
  if (!pair) throw new Error(`no storage pair ${blob}-${metadata}`);
  let s3: Promise<S3rverHandle> | undefined;
  let redis: Promise<RedisServer> | undefined;
  after(async () => {
    await (await s3)?.stop();
    await (await redis)?.stop();
  });
  return {
    pair,
    async options() {
      const options: TestRegistryOptions = {};
      const tag = randomBytes(4).toString('hex');
      if (blob === 'filesystem') options.driver = async (dir) => new FilesystemDriver({ root: join(dir, 'storage') });
      if (blob === 's3') {
        const server = await (s3 ??= startS3rver());
        options.driver = async () => createS3Driver(server.config({ prefix: `matrix-${tag}` }));
      }
      if (metadata === 'redis') {
        const { url } = await (redis ??= startRedisServer());
        options.metadata = async () => {
          const store = new RedisStore(redisConfigSchema.parse({ url, keyPrefix: `berth-${tag}:` }));
          if (!(await store.waitUntilReady(5000))) throw new Error(`redis at ${url} did not become ready`);
          return store;
        };
      }
      return options;
    },
  };
}
