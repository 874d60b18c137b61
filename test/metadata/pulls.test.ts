// The pull statistics contract on each store: embedded, Redis, and a real three-node Redis Cluster
// (every flush script must stay within its repository's slot).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { runMetadataPullsContract } from '../contract/metadata-pulls.contract.js';
import { embeddedStores, redisStores } from '../helpers/metadata-stores.js';
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

runMetadataPullsContract(
  'embedded',
  embeddedStores(() => scratch),
);
runMetadataPullsContract('redis', () => redisStores({ url: redis.url }, 'p'));
runMetadataPullsContract('redis cluster', () => redisStores({ cluster: { nodes: cluster.urls } }, 'p'));
