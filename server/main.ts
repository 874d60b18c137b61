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
import { openOperatorAudit, type OperatorAudit } from './operations/audit.js';
import { gcAuditCounts } from './operations/event-recorders.js';
import { GcRefusedError, type GcAction } from './registry/gc/collector.js';
import { markCompleteIfNew } from './registry/gc/completeness.js';
import { queueStored, type QueuedCount } from './registry/gc/full-mark.js';
import { runGc, type GcRunSummary } from './registry/gc/run.js';
import { gcCollector, gcUsage } from './registry/gc/setup.js';
import { Integrity, type IntegrityEvent } from './registry/integrity.js';
import { rebuildMetadata, type RebuildProgress, type RebuildResult } from './registry/rebuild.js';
import { scrub, type ScrubProgress, type ScrubResult } from './registry/scrub.js';
import { UploadService } from './registry/uploads.js';
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
    onOperatorAction: (event) => ops.onOperatorAction(event),
    onUploadActive: (delta) => ops.onUploadActive(delta),
    onIntegrity: (event) => ops.onIntegrity(event),
    onBlobRead: (event) => ops.onBlobRead(event),
    onTagLookup: (shared) => ops.onTagLookup(shared),
    onGc: (event) => ops.onGc(event),
    onPulls: (event) => ops.onPulls(event),
    onQuotaRefused: (stage, ns) => ops.onQuotaRefused(stage, ns),
    onRetention: (event) => ops.onRetention(event),
    onEventDelivery: (observation) => ops.onEventDelivery(observation),
    onProxyUpstream: (event) => ops.onProxyUpstream(event),
    onProxyStale: (upstream) => ops.onProxyStale(upstream),
    onProxyFill: (event) => ops.onProxyFill(event),
    onReplication: (observation) => ops.onReplication(observation),
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

export interface GcCommandOptions {
  configFile?: string | undefined;
  dryRun?: boolean;
  /** Queue every stored blob (and, with gc.deleteUntagged, every manifest) first. */
  full?: boolean;
  /** One pass of at most this many items; otherwise passes until nothing due is left. */
  limit?: number | undefined;
  signal?: AbortSignal;
  progressEveryMs?: number;
  onProgress?: (progress: GcProgress) => void;
  /** Each manifest or blob deleted, blob quarantined, item that failed. */
  onAction?: (action: GcAction) => void;
}

export type GcProgress = { phase: 'queueing'; queued: QueuedCount } | { phase: 'collecting'; totals: GcRunSummary };

export interface GcCommandResult extends GcRunSummary {
  /** With --full: what was queued. */
  queued?: QueuedCount;
}

/**
 * `berth gc`: collects now, next to the serving processes (every decision is fenced in the metadata
 * store, as between background passes). Throws GcRefusedError, before changing anything, when the
 * metadata store is not known complete. Audits what it deleted unless it is a dry run.
 */
export async function gcFromConfig(options: GcCommandOptions): Promise<GcCommandResult> {
  const config = loadConfig({ file: options.configFile });
  const storage = await buildStorageStack(config);
  const { driver, metadata } = storage;
  const now = Date.now;
  const dryRun = options.dryRun ?? false;
  const every = options.progressEveryMs ?? 2000;
  let audit: OperatorAudit | undefined;
  try {
    // Opened first: an unwritable audit file stops the run before it deletes anything.
    if (!dryRun) audit = openOperatorAudit(config, { stdout: 'stderr' });
    await driver.ping();
    await metadata.ping();
    if ((await markCompleteIfNew(driver, metadata, now())) === undefined) throw new GcRefusedError();
    // Only the sweep of abandoned uploads runs here, once per run rather than once per pass.
    const uploads = new UploadService(driver, metadata, {
      idleTimeoutMs: config.uploads.idleTimeoutSeconds * 1000,
      resumableHashing: false,
      bodyTimeoutMs: config.http.bodyTimeoutSeconds * 1000,
      now,
      usage: gcUsage(metadata, config, now),
    });
    let swept = false;
    const sweepOnce = async () => {
      if (swept) return 0;
      swept = true;
      return uploads.sweep(now() - config.uploads.idleTimeoutSeconds * 1000);
    };
    const collector = gcCollector(driver, metadata, config, now, sweepOnce);

    let queued: QueuedCount | undefined;
    if (options.full) {
      let lastReport = performance.now();
      queued = await queueStored(driver, metadata, {
        manifests: config.gc.deleteUntagged,
        now: now(),
        onQueued: (count) => {
          if (performance.now() - lastReport < every) return;
          lastReport = performance.now();
          options.onProgress?.({ phase: 'queueing', queued: count });
        },
      });
    }

    try {
      const totals = await runGc(collector, metadata, {
        dryRun,
        limit: options.limit,
        batch: config.gc.batch,
        now,
        progressEveryMs: every,
        ...(options.signal ? { signal: options.signal } : {}),
        onProgress: (t) => options.onProgress?.({ phase: 'collecting', totals: t }),
        onAction: (action) => {
          if (action.action === 'gc_manifest_deleted') {
            audit?.emit({ action: 'gc_manifest_deleted', repository: action.repository, digest: action.digest, reason: action.reason });
          }
          options.onAction?.(action);
        },
      });
      audit?.emit({
        action: 'gc_run',
        gc: { passes: totals.passes, ...gcAuditCounts(totals) },
        ...(options.signal?.aborted ? { reason: 'interrupted' } : {}),
      });
      return { ...totals, ...(queued ? { queued } : {}) };
    } catch (err) {
      // The manifests it deleted have their lines already; this says the run did not finish.
      audit?.emit({ action: 'gc_run', reason: 'failed' });
      throw err;
    }
  } finally {
    await audit?.close();
    await storage.close();
  }
}
