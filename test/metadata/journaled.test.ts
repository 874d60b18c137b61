// The store the registry actually uses is JournaledStore (server/app.ts) over the configured one: it
// must keep every promise of the contract. Each inner store and each local journal driver runs once (the
// wrapper only forwards, so the other two combinations would add time and no new path).
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { JournaledStore } from '../../server/registry/journal.js';
import { assembleStorageStack } from '../../server/storage-stack.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import { runMetadataEventsContract } from '../contract/metadata-events.contract.js';
import { runMetadataReplicationContract } from '../contract/metadata-replication.contract.js';
import { runMetadataStoreContract } from '../contract/metadata-store.contract.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

let scratch: ScratchDir;
let redis: RedisServer;
before(async () => {
  scratch = await makeScratchDir('journaled');
  redis = await startRedisServer();
});
after(async () => {
  await redis?.stop();
  await scratch?.remove();
});

type Inner = 'embedded' | 'redis';
type Journal = 'memory' | 'filesystem';

async function openInner(kind: Inner, dir: string): Promise<MetadataStore> {
  if (kind === 'embedded') return new EmbeddedStore({ path: join(dir, 'metadata') });
  const store = new RedisStore(redisConfigSchema.parse({ url: redis.url, keyPrefix: `j${randomUUID().slice(0, 8)}:` }));
  if (!(await store.waitUntilReady(5000))) throw new Error('redis store did not connect');
  return store;
}

function openJournal(kind: Journal, dir: string): BlobDriver {
  return kind === 'memory' ? new MemoryDriver() : new FilesystemDriver({ root: join(dir, 'storage') });
}

for (const [inner, journal] of [
  ['embedded', 'memory'],
  ['redis', 'filesystem'],
] as const) {
  runMetadataStoreContract(`journaled ${inner} (journal on ${journal} blobs)`, async () => {
    const dir = join(scratch.path, randomUUID());
    const driver = openJournal(journal, dir);
    const store = new JournaledStore(await openInner(inner, dir), driver);
    return {
      store,
      async cleanup() {
        await store.close();
        await driver.close();
      },
    };
  });
}

// The event log passes through every layer the registry stacks over the store (timings, journal, quota
// counting): the records a change makes through them are the store's own.
runMetadataEventsContract('assembled embedded stack', async (tuning = {}) => {
  const dir = join(scratch.path, randomUUID());
  const stack = assembleStorageStack({ driver: new MemoryDriver(), metadata: new EmbeddedStore({ path: join(dir, 'metadata'), ...tuning }) });
  return { store: stack.metadata, cleanup: () => stack.close() };
});

// So do replication's records, through every layer including the one that drops event origins.
runMetadataReplicationContract('assembled embedded stack, events off', async () => {
  const dir = join(scratch.path, randomUUID());
  const stack = assembleStorageStack({ driver: new MemoryDriver(), metadata: new EmbeddedStore({ path: join(dir, 'metadata') }) }, {}, { recordEvents: false });
  return { store: stack.metadata, cleanup: () => stack.close() };
});
