import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../server/config.js';
import { createMetadataStore } from '../../storage-drivers/metadata/factory.js';
import { MetadataUnavailableError } from '../../storage-drivers/metadata/types.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

describe('createMetadataStore', () => {
  let scratch: string;
  let redis: RedisServer;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'berth-factory-'));
    redis = await startRedisServer();
  });
  after(async () => {
    await redis.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('opens the embedded store by default', async () => {
    const config = parseConfig({});
    const store = await createMetadataStore(config.metadata, { metadataPath: join(scratch, 'meta') });
    try {
      assert.equal(store.name, 'embedded');
      await store.linkBlob('r', { digest: `sha256:${'0'.repeat(64)}`, size: 1 });
      assert.equal(await store.repositoryExists('r'), true);
    } finally {
      await store.close();
    }
  });

  it('opens the Redis store from its section', async () => {
    const config = parseConfig({ metadata: { store: 'redis', redis: { url: redis.url, keyPrefix: 'factory:' } } });
    const store = await createMetadataStore(config.metadata, { metadataPath: join(scratch, 'unused') });
    try {
      assert.equal(store.name, 'redis');
      await store.ping();
    } finally {
      await store.close();
    }
  });

  it('returns a Redis store that answers 503-style errors when Redis is not there yet', async () => {
    const gone = await startRedisServer();
    await gone.kill();
    const config = parseConfig({ metadata: { store: 'redis', redis: { url: gone.url, connectTimeoutMs: 200 } } });
    const store = await createMetadataStore(config.metadata, { metadataPath: join(scratch, 'unused') });
    try {
      await assert.rejects(store.ping(), MetadataUnavailableError);
      await gone.restart();
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await store.ping();
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      }
    } finally {
      await store.close();
      await gone.stop();
    }
  });
});
