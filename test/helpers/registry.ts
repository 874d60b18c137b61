import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../../server/app.js';
import { parseConfig, type BerthConfigInput } from '../../server/config.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';

export interface TestRegistry {
  url: string;
  app: FastifyInstance;
  driver: BlobDriver;
  metadata: MetadataStore;
  dir: string;
  close(): Promise<void>;
}

export interface TestRegistryOptions {
  config?: BerthConfigInput;
  driver?: (dir: string) => Promise<BlobDriver>;
  metadata?: (dir: string) => Promise<MetadataStore>;
  deps?: Partial<AppDeps>;
}

/** A registry on 127.0.0.1:<free port> over a scratch directory; memory blobs + embedded metadata unless told otherwise. */
export async function startTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-api-'));
  const config = parseConfig({ dataDir: dir, log: { level: 'silent' }, ...options.config });
  const driver = options.driver ? await options.driver(dir) : new MemoryDriver();
  const metadata = options.metadata ? await options.metadata(dir) : new EmbeddedStore({ path: join(dir, 'metadata') });
  const app = await buildApp({ config, driver, metadata, ...options.deps });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    app,
    driver,
    metadata,
    dir,
    async close() {
      await app.close();
      await metadata.close();
      await driver.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
