// The pull statistics contract on each store: embedded, Redis, and a real three-node Redis Cluster
// (every flush script must stay within its repository's slot).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { redisConfigSchema, type RedisConfigInput } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import { runMetadataPullsContract } from '../contract/metadata-pulls.contract.js';
import { startRedisCluster, startRedisServer, type RedisCluster, type RedisServer } from '../helpers/redis-server.js';

let scratch: string;
let redis: RedisServer;
let cluster: RedisCluster;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'berth-pulls-'));
  [redis, cluster] = await Promise.all([startRedisServer(), startRedisCluster(3)]);
});
after(async () => {
  await Promise.all([redis?.stop(), cluster?.stop()]);
  await rm(scratch, { recursive: true, force: true });
});

let counter = 0;
runMetadataPullsContract('embedded', async () => {
  const path = join(scratch, `store-${counter++}`);
  const store = new EmbeddedStore({ path });
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(path, { recursive: true, force: true });
    },
  };
});

async function openRedis(config: RedisConfigInput) {
  const store = new RedisStore(redisConfigSchema.parse({ ...config, keyPrefix: `p${randomUUID().slice(0, 8)}:` }));
  assert.equal(await store.waitUntilReady(5000), true, 'store did not connect');
  return { store, cleanup: () => store.close() };
}
runMetadataPullsContract('redis', () => openRedis({ url: redis.url }));
runMetadataPullsContract('redis cluster', () => openRedis({ cluster: { nodes: cluster.urls } }));
