import type { FastifyInstance } from 'fastify';
import { createBlobDriver } from '../storage-drivers/blob/factory.js';
import type { BlobDriver } from '../storage-drivers/blob/types.js';
import { createMetadataStore } from '../storage-drivers/metadata/factory.js';
import type { MetadataStore } from '../storage-drivers/metadata/types.js';
import { buildApp } from './app.js';
import { rebuildMetadata, type RebuildProgress } from './registry/rebuild.js';
import { loadConfig, resolvedPaths, type BerthConfig } from './config.js';

export interface Server {
  app: FastifyInstance;
  config: BerthConfig;
  url: string;
  stop(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Loads config, opens storage and metadata (failing fast with a clear message), and listens. */
export async function startServer(options: { configFile?: string } = {}): Promise<Server> {
  const config = loadConfig({ file: options.configFile });
  const paths = resolvedPaths(config);
  const driver: BlobDriver = createBlobDriver(config, paths);
  const metadata: MetadataStore = await createMetadataStore(config.metadata, paths);
  try {
    await driver.ping();
  } catch (err) {
    throw new Error(`storage (${config.storage.driver}) is not usable: ${(err as Error).message}`);
  }
  const app = await buildApp({ config, driver, metadata });
  await app.listen({ host: config.http.host, port: config.http.port });
  const address = app.server.address();
  const port = address && typeof address !== 'string' ? address.port : config.http.port;
  const url = `http://${isLoopback(config.http.host) ? config.http.host : '127.0.0.1'}:${port}`;
  if (!config.auth?.enabled && !isLoopback(config.http.host)) {
    app.log.warn(`WARNING: authentication is OFF and Berth listens on ${config.http.host}:${port}: anyone who can reach it can push, pull and delete. Turn on auth (auth.enabled) before exposing it.`);
  }
  app.log.info({ storage: config.storage.driver, metadata: config.metadata.store, port }, 'Berth is serving');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const deadline = setTimeout(() => {
        app.log.warn('shutdown deadline passed; closing remaining connections');
        app.server.closeAllConnections();
      }, config.http.shutdownTimeoutSeconds * 1000);
      deadline.unref();
      try {
        await app.close();
      } finally {
        clearTimeout(deadline);
        await metadata.close();
        await driver.close();
      }
    })());
  return { app, config, url, stop };
}

/** `berth metadata rebuild`: recreates the configured metadata store's content from storage. */
export async function rebuildFromConfig(options: { configFile?: string }, onProgress?: (p: RebuildProgress) => void): Promise<RebuildProgress> {
  const config = loadConfig({ file: options.configFile });
  const paths = resolvedPaths(config);
  const driver = createBlobDriver(config, paths);
  const metadata = await createMetadataStore(config.metadata, paths);
  try {
    await driver.ping();
    await metadata.ping();
    return await rebuildMetadata(driver, metadata, onProgress);
  } finally {
    await metadata.close();
    await driver.close();
  }
}
