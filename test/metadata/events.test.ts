// The events contract on every metadata store: embedded, Redis, and a three-node Redis Cluster (every
// event script must stay within one slot: a repository's own, or the log's `{events}`).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { runMetadataEventsContract } from '../contract/metadata-events.contract.js';
import { embeddedStores, redisStores } from '../helpers/metadata-stores.js';
import { startRedisCluster, startRedisServer, type RedisCluster, type RedisServer } from '../helpers/redis-server.js';

let scratch: string;
let server: RedisServer;
let cluster: RedisCluster;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'berth-events-'));
  server = await startRedisServer();
  cluster = await startRedisCluster(3);
});
after(async () => {
  await server.stop();
  await cluster.stop();
  await rm(scratch, { recursive: true, force: true });
});

runMetadataEventsContract(
  'embedded',
  embeddedStores(() => scratch),
);
runMetadataEventsContract('redis', (tuning) => redisStores({ url: server.url }, 'e', tuning));
runMetadataEventsContract('redis cluster', (tuning) => redisStores({ cluster: { nodes: cluster.urls } }, 'ec', tuning));
