// The quota contract on every metadata store: embedded, Redis, and a three-node Redis Cluster (every
// quota script must stay within its namespace's slot).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { runMetadataQuotaContract } from '../contract/metadata-quotas.contract.js';
import { embeddedStores, redisStores } from '../helpers/metadata-stores.js';
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

runMetadataQuotaContract(
  'embedded',
  embeddedStores(() => scratch),
);
runMetadataQuotaContract('redis', () => redisStores({ url: server.url }, 'q'));
runMetadataQuotaContract('redis cluster', () => redisStores({ cluster: { nodes: cluster.urls } }, 'qc'));
