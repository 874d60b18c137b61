// Two "processes" over one S3 bucket (s3rver) and one Redis, each with its own driver and connection.
import { randomBytes } from 'node:crypto';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import { instrument } from '../../storage-drivers/blob/instrumented.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { startS3rver } from '../helpers/s3rver.js';
import { runFillSuite } from './fill-suite.js';

runFillSuite('S3 (s3rver) + Redis', async () => {
  const s3 = await startS3rver();
  const redis = await startRedisServer();
  const keyPrefix = `fills-${randomBytes(4).toString('hex')}:`;
  const stores = [0, 1].map(() => new RedisStore(redisConfigSchema.parse({ url: redis.url, keyPrefix })));
  for (const store of stores) if (!(await store.waitUntilReady(5000))) throw new Error('redis did not become ready');
  const drivers = [0, 1].map(() => instrument(createS3Driver(s3.config({ prefix: 'fills' })), () => undefined));
  return {
    a: { driver: drivers[0]!, metadata: stores[0]! },
    b: { driver: drivers[1]!, metadata: stores[1]! },
    async close() {
      for (const store of stores) await store.close();
      for (const driver of drivers) await driver.close();
      await s3.stop();
      await redis.stop();
    },
  };
});
