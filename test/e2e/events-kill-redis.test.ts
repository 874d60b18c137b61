import { randomBytes } from 'node:crypto';
import { openRedisStore } from '../helpers/metadata-stores.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { runKillSuite } from './events-kill-suite.js';

runKillSuite('two processes on one Redis', async () => {
  const redis = await startRedisServer();
  const keyPrefix = `kill-${randomBytes(4).toString('hex')}:`;
  return {
    metadataConfig: () => ({ store: 'redis', redis: { url: redis.url, keyPrefix } }),
    async open() {
      const store = await openRedisStore({ url: redis.url, keyPrefix }, '');
      return { events: store.events, close: () => store.close() };
    },
    stop: () => redis.stop(),
  };
});
