import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../../server/app.js';
import { parseConfig, type BerthConfigInput } from '../../server/config.js';
import { assembleStorageStack, type StorageObservers, type StorageStack } from '../../server/storage-stack.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';

export interface TestRegistry {
  url: string;
  app: FastifyInstance;
  /** The bare driver and store under the stack, for tests that tamper with storage behind the app's back. */
  driver: BlobDriver;
  metadata: MetadataStore;
  /** What the app runs on: the same stack `berth serve` builds (instrumented, journaled). */
  storage: StorageStack;
  dir: string;
  close(): Promise<void>;
}

export interface TestRegistryOptions {
  config?: BerthConfigInput;
  driver?: (dir: string) => Promise<BlobDriver>;
  metadata?: (dir: string) => Promise<MetadataStore>;
  observers?: StorageObservers;
  deps?: Partial<Omit<AppDeps, 'storage'>>;
}

/** A registry on 127.0.0.1:<free port> over a scratch directory; memory blobs + embedded metadata unless told otherwise. */
export async function startTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-api-'));
  const config = parseConfig({ dataDir: dir, log: { level: 'silent' }, ...options.config });
  const driver = options.driver ? await options.driver(dir) : new MemoryDriver();
  const metadata = options.metadata ? await options.metadata(dir) : new EmbeddedStore({ path: join(dir, 'metadata') });
  const storage = assembleStorageStack({ driver, metadata }, options.observers, { recordEvents: config.events.enabled });
  const app = await buildApp({ config, storage, ...options.deps });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    app,
    driver,
    metadata,
    storage,
    dir,
    async close() {
      await app.close();
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
