// Fresh metadata stores for the contract suites: each test gets its own embedded directory or its own
// Redis key prefix, so the tests of one file never see each other's data.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { startRedisCluster, startRedisServer, type RedisCluster, type RedisServer } from './redis-server.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { redisConfigSchema, type RedisConfigInput } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import type { RedisStoreOptions } from '../../storage-drivers/metadata/redis-client.js';
import type { MetadataStoreFixture } from '../contract/metadata-store.contract.js';

/** Store options beyond the connection that a suite may set (both stores take them). */
export interface StoreTuning {
  eventLogMaxLength?: number;
}

/** Opens an embedded store in a new directory under `dir()` (read per call: it is made in a before hook). */
export function embeddedStores(dir: () => string): (tuning?: StoreTuning) => Promise<MetadataStoreFixture> {
  let counter = 0;
  return async (tuning = {}) => {
    const path = join(dir(), `store-${counter++}`);
    const store = new EmbeddedStore({ path, ...tuning });
    return {
      store,
      async cleanup() {
        await store.close();
        await rm(path, { recursive: true, force: true });
      },
    };
  };
}

/**
 * A Redis store under a fresh key prefix starting with `prefix` (unless `config` sets one), connected.
 * `options`: the store's own options beyond the connection settings.
 */
export async function openRedisStore(
  config: RedisConfigInput,
  prefix: string,
  options: Omit<RedisStoreOptions, keyof RedisConfigInput> = {},
): Promise<RedisStore> {
  const store = new RedisStore({ ...redisConfigSchema.parse({ keyPrefix: `${prefix}${randomUUID().slice(0, 8)}:`, ...config }), ...options });
  assert.equal(await store.waitUntilReady(5000), true, 'store did not connect');
  return store;
}

export async function redisStores(config: RedisConfigInput, prefix: string, tuning: StoreTuning = {}): Promise<MetadataStoreFixture> {
  const store = await openRedisStore(config, prefix, tuning);
  return { store, cleanup: () => store.close() };
}

export type StoreFactory = (tuning?: StoreTuning) => Promise<MetadataStoreFixture>;

/**
 * For a contract that must hold on every store: embedded, Redis and a three-node Redis Cluster (where
 * every script has to stay within one slot). Starts the servers for the file and calls `run` per store.
 */
export function onEveryStore(label: string, run: (name: string, stores: StoreFactory) => void): void {
  let scratch: string;
  let server: RedisServer;
  let cluster: RedisCluster;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), `berth-${label}-`));
    server = await startRedisServer();
    cluster = await startRedisCluster(3);
  });
  after(async () => {
    await server.stop();
    await cluster.stop();
    await rm(scratch, { recursive: true, force: true });
  });
  run(
    'embedded',
    embeddedStores(() => scratch),
  );
  run('redis', (tuning) => redisStores({ url: server.url }, label, tuning));
  run('redis cluster', (tuning) => redisStores({ cluster: { nodes: cluster.urls } }, `${label}c`, tuning));
}
