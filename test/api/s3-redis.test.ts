import { after } from 'node:test';
import { randomBytes } from 'node:crypto';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';
import { runApiSuite } from './api-suite.js';

let s3: S3rverHandle | undefined;
let redis: RedisServer | undefined;
after(async () => {
  await s3?.stop();
  await redis?.stop();
});

runApiSuite('S3 blobs (s3rver) + Redis metadata', async () => {
  s3 = await startS3rver();
  redis = await startRedisServer();
  const server = s3;
  const url = redis.url;
  return {
    driver: async () => createS3Driver(server.config({ prefix: `api-${randomBytes(4).toString('hex')}` })),
    metadata: async () => {
      const store = new RedisStore({ ...redisConfigSchema.parse({ url, keyPrefix: `berth-${randomBytes(4).toString('hex')}:` }) });
      await store.waitUntilReady(5000);
      return store;
    },
  };
});
