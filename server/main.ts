import type { FastifyInstance } from 'fastify';
import { createAuth, RedisLoginCounters } from '../auth/index.js';
import { redisConfigSchema } from '../storage-drivers/metadata/redis-config.js';
import { RedisStore, warnIfEphemeral } from '../storage-drivers/metadata/redis.js';
import { buildApp } from './app.js';
import { loadConfig, type BerthConfig } from './config.js';
import { exposeWorkerMetrics, isClusterWorker } from './operations/cluster.js';
import { nodeSupportNotice } from './operations/node-support.js';
import { Metrics } from './operations/metrics.js';
import { createOperations } from './operations/operations.js';
import { Integrity, type IntegrityEvent } from './registry/integrity.js';
import { rebuildMetadata, type RebuildProgress, type RebuildResult } from './registry/rebuild.js';
import { scrub, type ScrubProgress, type ScrubResult } from './registry/scrub.js';
import { buildStorageStack } from './storage-stack.js';

export interface Server {
  app: FastifyInstance;
  config: BerthConfig;
  url: string;
  stop(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * Loads config, opens storage and metadata (failing fast with one line per unusable dependency), wires
 * logging, metrics, audit, health, TLS and auth around the registry app, and listens.
 */
export async function startServer(options: { configFile?: string | undefined } = {}): Promise<Server> {
  const config = loadConfig({ file: options.configFile });
  const metrics = new Metrics({ maxRepositoryLabels: config.metrics.maxRepositoryLabels });
  const storage = await buildStorageStack(config, { storage: metrics.observeStorage, metadata: metrics.observeMetadata });
  const ops = createOperations({ config, storage, metrics, clusterWorker: isClusterWorker() });
  if (isClusterWorker()) exposeWorkerMetrics(ops.metrics.registry);
  try {
    await ops.assertReady(5000);
  } catch (err) {
    // A Redis client that keeps reconnecting would otherwise keep the process alive.
    await Promise.allSettled([storage.close(), ops.close()]);
    throw err;
  }
  const auth = await createAuth(config.auth, {
    dataDir: config.dataDir,
    publicUrl: config.http.publicUrl,
    onAuthFailure: (failure) => ops.onAuthFailure(failure),
    // With Redis metadata every process shares the login counters, over the store's own connection.
    ...(storage.store instanceof RedisStore
      ? { loginCounters: new RedisLoginCounters(storage.store.client, (config.metadata.redis ?? redisConfigSchema.parse({})).keyPrefix) }
      : {}),
  });
  const app = await buildApp({
    config,
    storage,
    server: ops.serverOptions,
    authorizer: auth.authorizer,
    plugins: async (scope) => {
      await ops.plugins(scope);
      await scope.register(auth.tokenRoutes);
    },
    onEvent: (event) => ops.onEvent(event),
    onUploadActive: (delta) => ops.onUploadActive(delta),
    onIntegrity: (event) => ops.onIntegrity(event),
    onGc: (event) => ops.onGc(event),
  });
  auth.setLog({ info: (m) => app.log.info(m), warn: (m) => app.log.warn(m), error: (m) => app.log.error(m) });
  await app.listen({ host: config.http.host, port: config.http.port });
  await ops.started(app);
  const address = app.server.address();
  const port = address && typeof address !== 'string' ? address.port : config.http.port;
  const scheme = config.http.tls ? 'https' : 'http';
  const url = `${scheme}://${isLoopback(config.http.host) ? config.http.host : '127.0.0.1'}:${port}`;

  const ephemeral = await warnIfEphemeral(storage.store).catch(() => undefined);
  if (ephemeral) app.log.warn(ephemeral);
  if (!auth.enabled && !isLoopback(config.http.host)) {
    app.log.warn(
      `WARNING: authentication is OFF and Berth listens on ${config.http.host}:${port}: anyone who can reach it can push, pull and delete. Set auth.enabled: true before exposing it (see auth/README.md).`,
    );
  }
  const nodeNotice = isClusterWorker() ? undefined : nodeSupportNotice();
  if (nodeNotice) app.log.warn(nodeNotice);
  app.log.info({ storage: config.storage.driver, metadata: config.metadata.store, auth: auth.enabled, port, url }, 'Berth is serving');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      ops.beginDrain();
      const deadline = setTimeout(() => {
        app.log.warn('shutdown deadline passed; closing remaining connections');
        app.server.closeAllConnections();
      }, config.http.shutdownTimeoutSeconds * 1000);
      deadline.unref();
      try {
        await app.close();
      } finally {
        clearTimeout(deadline);
        await auth.close();
        await storage.close();
        await ops.close();
      }
    })());
  return { app, config, url, stop };
}

export interface ScrubCommandOptions {
  configFile?: string | undefined;
  bytesPerSecond?: number;
  restart?: boolean;
  progressEveryMs?: number;
  onProgress?: (p: ScrubProgress) => void;
  /** One line per object found bad. */
  onBad?: (event: IntegrityEvent) => void;
}

/** `berth scrub`: one pass over storage with the configured driver and metadata store. */
export async function scrubFromConfig(options: ScrubCommandOptions): Promise<ScrubResult> {
  const config = loadConfig({ file: options.configFile });
  const storage = await buildStorageStack(config);
  const { driver, metadata } = storage;
  const silent = { warn: () => undefined, error: () => undefined };
  const integrity = new Integrity(driver, metadata, {
    verifyReads: 'always',
    smallBytes: config.storage.verifySmallBytes,
    rememberVerified: 0,
    log: silent,
    ...(options.onBad ? { onEvent: options.onBad } : {}),
  });
  try {
    await driver.ping();
    await metadata.ping();
    return await scrub(driver, metadata, integrity, {
      bytesPerSecond: options.bytesPerSecond ?? config.storage.scrub.bytesPerSecond,
      leaseMs: config.storage.scrub.leaseSeconds * 1000,
      ...(options.restart ? { restart: true } : {}),
      ...(options.progressEveryMs === undefined ? {} : { progressEveryMs: options.progressEveryMs }),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
  } finally {
    await storage.close();
  }
}

/** `berth metadata rebuild`: recreates the configured metadata store's content from storage. */
export async function rebuildFromConfig(options: { configFile?: string | undefined }, onProgress?: (p: RebuildProgress) => void): Promise<RebuildResult> {
  const config = loadConfig({ file: options.configFile });
  const storage = await buildStorageStack(config);
  try {
    await storage.driver.ping();
    await storage.store.ping();
    // Into the store without the journal: the entries written back are the journal's own.
    return await rebuildMetadata(storage.driver, storage.store, onProgress);
  } finally {
    await storage.close();
  }
}
