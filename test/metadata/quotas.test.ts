// The quota contract on every metadata store: embedded, Redis, and a three-node Redis Cluster (every
// quota script must stay within its namespace's slot).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import { runMetadataQuotaContract } from '../contract/metadata-quotas.contract.js';
import { startRedisCluster, startRedisServer, type RedisCluster, type RedisServer } from '../helpers/redis-server.js';

let scratch: string;
let server: RedisServer;
let cluster: RedisCluster;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'berth-quotas-'));
  server = await startRedisServer();
  cluster = await startRedisCluster(3);
});
after(async () => {
  await server.stop();
  await cluster.stop();
  await rm(scratch, { recursive: true, force: true });
});

let counter = 0;
runMetadataQuotaContract('embedded', async () => {
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

async function ready(store: RedisStore): Promise<{ store: RedisStore; cleanup: () => Promise<void> }> {
  assert.equal(await store.waitUntilReady(5000), true, 'store did not connect');
  return { store, cleanup: () => store.close() };
}
runMetadataQuotaContract('redis', () => ready(new RedisStore(redisConfigSchema.parse({ url: server.url, keyPrefix: `q${randomUUID().slice(0, 8)}:` }))));
runMetadataQuotaContract('redis cluster', () =>
  ready(new RedisStore(redisConfigSchema.parse({ cluster: { nodes: cluster.urls }, keyPrefix: `qc${randomUUID().slice(0, 8)}:` }))),
);
