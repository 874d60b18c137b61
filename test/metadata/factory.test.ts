import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../server/config.js';
import { newRecordId, type ChangeRecord } from '../../storage-drivers/metadata/event-types.js';
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

  it("passes the event log's maximum length to either store, and refuses one that is not a positive integer", async () => {
    const records = (n: number): ChangeRecord[] =>
      Array.from({ length: n }, () => ({ id: newRecordId(), at: 1, origin: { actor: 'gc', actorKind: 'system' }, kind: 'blob_deleted', digest: 'sha256:x' }));
    const embedded = await createMetadataStore({ store: 'embedded', eventLogMaxLength: 2 }, { metadataPath: join(scratch, 'short-log') });
    try {
      await embedded.events.append(records(5));
      assert.equal((await embedded.events.head())?.length, 2);
    } finally {
      await embedded.close();
    }
    const config = parseConfig({ metadata: { store: 'redis', redis: { url: redis.url, keyPrefix: 'factory-log:' } } });
    const onRedis = await createMetadataStore({ ...config.metadata, eventLogMaxLength: 10 }, { metadataPath: join(scratch, 'unused') });
    try {
      await onRedis.events.append(records(300));
      // Redis trims whole stream nodes: fewer than appended, never fewer than the maximum.
      const length = (await onRedis.events.head())?.length ?? 0;
      assert.ok(length >= 10 && length < 300, `kept ${length}`);
    } finally {
      await onRedis.close();
    }
    await assert.rejects(createMetadataStore({ store: 'embedded', eventLogMaxLength: 0 }, { metadataPath: join(scratch, 'bad-log') }), RangeError);
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
