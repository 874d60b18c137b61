import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { openAccess, type Authorizer } from '../auth/types.js';
import type { BlobDriver } from '../storage-drivers/blob/types.js';
import type { MetadataStore } from '../storage-drivers/metadata/types.js';
import type { StorageStack } from './storage-stack.js';
import type { BerthConfig } from './config.js';
import { clientErrorHandler, errorHandler, frameworkErrorHandler, OciError, sendError } from './errors.js';
import { BlobService } from './registry/blobs.js';
import { SharedReads } from './registry/shared-reads.js';
import { LookupCoalescer } from './registry/lookup-coalescer.js';
import type { ManifestRecord } from '../storage-drivers/metadata/types.js';
import { Integrity, type IntegrityEvent } from './registry/integrity.js';
import { scrub, ScrubBusyError } from './registry/scrub.js';
import { ManifestService } from './registry/manifests.js';
import { ImmutableTagRules } from './registry/immutable/rules.js';
import { immutableTagRoutes } from './routes/immutable-tags.js';
import { RepositoryService } from './registry/repositories.js';
import { UploadService } from './registry/uploads.js';
import type { Collector } from './registry/gc/collector.js';
import { GcRunner, startBackgroundGc, type GcEvent } from './registry/gc/background.js';
import { gcRoutes } from './routes/gc.js';
import { NO_PULL_COUNTING, PullCounter, type PullCounterEvent } from './registry/stats/pull-counter.js';
import { statsRoutes } from './routes/stats.js';
import { repositoryApiRoutes } from './routes/repositories-api.js';
import { NO_PULLS, type IsImmutable, type PullsOf } from './registry/retention/evaluate.js';
import { retentionSources } from './registry/retention/sources.js';
import { RetentionRunner, startBackgroundRetention, type RetentionRunEvent } from './registry/retention/background.js';
import { Retention } from './registry/retention/retention.js';
import { replicationRoutes } from './routes/replication.js';
import { retentionRoutes } from './routes/retention.js';
import { gcCollector, gcUsage } from './registry/gc/setup.js';
import { markCompleteIfNew } from './registry/gc/completeness.js';
import { baseRoutes } from './routes/base.js';
import { continueOnFirstRead, discardUnreadBody } from './routes/body.js';
import { blobRoutes } from './routes/blobs.js';
import type { OperatorAction, RegistryEvent, RouteContext } from './routes/context.js';
import { manifestRoutes } from './routes/manifests.js';
import { referrerRoutes } from './routes/referrers.js';
import { tagRoutes } from './routes/tags.js';
import { uploadRoutes } from './routes/uploads.js';
import { quotaRoutes } from './routes/quotas.js';
import { eventRoutes } from './routes/events.js';
import { repositoryManifestRoutes } from './routes/repository-manifests.js';
import { openApiRoutes } from './routes/openapi.js';
import { uiRoutes } from './routes/ui.js';
import { infoRoutes } from './routes/info.js';
import { statusRoutes } from './routes/status.js';
import { Quotas, type QuotaStage } from './registry/quotas/service.js';
import { REPO_PREFIX, rewriteRegistryUrl } from './routes/url-rewrite.js';
import { requestOrigin } from './routes/access.js';
import type { RegistryEvent as RegistryEventRecord } from './registry/events/event.js';
import type { LaneObservation } from './registry/events/lane.js';
import { NO_PULL_EVENTS, PullEvents } from './registry/events/pull-events.js';
import { setupEvents, type EventsRuntime } from './registry/events/setup.js';
import { buildProxyNamespaces, setupProxy, type ProxyRuntime } from './registry/proxy/setup.js';
import type { ReplicationObservation } from './registry/replication/service.js';
import { setupReplication, type ReplicationRuntime } from './registry/replication/setup.js';
import { RepositorySummaryCache } from './registry/summary-cache.js';
import type { FillObserver } from './registry/proxy/fills.js';
import type { UpstreamEvent } from './registry/proxy/upstream.js';

export interface AppDeps {
  config: BerthConfig;
  /** From buildStorageStack / assembleStorageStack: the app wraps nothing itself. */
  storage: StorageStack;
  authorizer?: Authorizer;
  /** Fastify server options merged over the defaults (logger, https, …). */
  server?: FastifyServerOptions & Record<string, unknown>;
  /** Registers extra plugins before the registry routes (token service, health, metrics). */
  plugins?: (app: FastifyInstance) => Promise<void>;
  /** Audit / metrics sink for registry events. */
  onEvent?: (event: RegistryEvent) => void;
  /** Audit sink for operators' changes through the management API. */
  onOperatorAction?: (event: OperatorAction) => void;
  onUploadActive?: (delta: 1 | -1) => void;
  /** The clock for upload expiry and leases (tests move it). */
  now?: () => number;
  /** A stored object found corrupt or missing (metrics). */
  onIntegrity?: (event: IntegrityEvent) => void;
  /** Garbage collection passes and what they deleted (metrics, audit). */
  onGc?: (event: GcEvent) => void;
  /** Pull counting and its flushes (metrics). */
  onPulls?: (event: PullCounterEvent) => void;
  /** A push refused by its namespace's storage quota (metrics). */
  onQuotaRefused?: (stage: QuotaStage, namespace: string) => void;
  /** Retention runs, deletions and refusals (metrics, audit). */
  onRetention?: (event: RetentionRunEvent) => void;
  /** Pull statistics for the pull-based retention rules; default: the store's (retention/sources.ts). */
  pullsOf?: PullsOf;
  /** The immutable-tag rule protecting a tag from retention; default: immutableTags.rules. */
  isImmutable?: IsImmutable;
  /** A blob read opened on storage, or a GET that joined a shared read in flight (metrics). */
  onBlobRead?: (event: BlobReadEvent) => void;
  /** A resolution of a tag: its own metadata lookup, or shared with others in flight (metrics). */
  onTagLookup?: (shared: boolean) => void;
  /** Event deliveries, failures, dead letters and backlog (metrics). */
  onEventDelivery?: (observation: LaneObservation<RegistryEventRecord>) => void;
  /** Requests to proxy upstreams, and cached manifests served stale because an upstream was unavailable (metrics). */
  onProxyUpstream?: (event: UpstreamEvent) => void;
  onProxyStale?: (upstream: string) => void;
  /** Blob fills started and ended, requests served from them, bytes spooled (metrics). */
  onProxyFill?: FillObserver;
  /** Tags replicated, failures, passes and lag (metrics, audit). */
  onReplication?: (observation: ReplicationObservation) => void;
}

export type BlobReadEvent = 'storage_read' | 'shared_join';

/**
 * The management API's repository summaries (docs/management-api.md): enough entries for every
 * repository of a large registry; the TTL bounds how stale another process's changes can look.
 */
const SUMMARY_CACHE_ENTRIES = 50_000;
const SUMMARY_CACHE_TTL_MS = 30_000;
const CHANGES_SUMMARY = new Set<RegistryEvent['action']>(['push', 'delete', 'tag_moved', 'blob_delete']);

const KNOWN_PATHS = [
  new RegExp(`^${REPO_PREFIX}[^/]+/(manifests|blobs|referrers)/[^/]+$`),
  new RegExp(`^${REPO_PREFIX}[^/]+/blobs/uploads/[^/]*$`),
  new RegExp(`^${REPO_PREFIX}[^/]+/tags/list$`),
  /^\/v2\/(_catalog)?$/,
];

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's upload service (the sweep, for operators' tools and tests). */
    uploads: UploadService;
    /** The app's read verification (background checks settle here). */
    integrity: Integrity;
    /** The app's garbage collector (passes on demand, for operators' tools and tests). */
    gc: Collector;
    /** Its passes in this process: background, on request, and their status. */
    gcRunner: GcRunner;
    /** This process's pull counter (flushes on demand, for tests); undefined with stats.enabled false. */
    pullCounter: PullCounter | undefined;
    /** Retention runs in this process: background, on request, and their status. */
    retentionRunner: RetentionRunner;
    /** The event endpoints and this process's name in their claims. */
    events: EventsRuntime;
    /** Pull events gathered in this process (flushes on demand, for tests); undefined with events.pulls off. */
    pullEvents: PullEvents | undefined;
    /** The pull-through cache; undefined when no upstream is configured. */
    proxy: ProxyRuntime | undefined;
    /** Replication rules and this Berth's side of them. */
    replication: ReplicationRuntime;
  }
}

/** Builds the registry's HTTP app without listening; main.ts and the tests call listen themselves. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const { driver, metadata } = deps.storage;
  const proxyObservers = { upstream: deps.onProxyUpstream, stale: deps.onProxyStale, fills: deps.onProxyFill };
  const namespaces = buildProxyNamespaces(config, proxyObservers);
  const app = Fastify({
    logger: { level: config.log.level },
    routerOptions: { maxParamLength: 1024 },
    trustProxy: config.http.trustProxy,
    rewriteUrl: (req) => rewriteRegistryUrl(req.url ?? '/', (ns) => namespaces.forHost(ns)?.namespace),
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
    ...deps.server,
  });

  const now = deps.now ?? Date.now;
  const gcConfig = config.gc;
  const usage = gcUsage(metadata, config, now);
  // The sweep is UploadService's, built below; a pass only calls it later.
  const collector = gcCollector(driver, metadata, config, now, () => uploads.sweep(now() - config.uploads.idleTimeoutSeconds * 1000));

  if ((await markCompleteIfNew(driver, metadata, now())) === undefined && gcConfig.enabled) {
    app.log.warn('garbage collection will refuse to run: the metadata store is not known to be complete; run `berth metadata rebuild` (see docs/gc.md)');
  }

  const quotas = new Quotas(metadata, config.quotas, { now, onRefused: deps.onQuotaRefused });
  const resumableHashing =
    config.uploads.resumableHashing === 'auto' ? config.metadata.store === 'redis' || config.http.workers > 1 : config.uploads.resumableHashing;
  const uploads = new UploadService(driver, metadata, {
    idleTimeoutMs: config.uploads.idleTimeoutSeconds * 1000,
    resumableHashing,
    bodyTimeoutMs: config.http.bodyTimeoutSeconds * 1000,
    onActiveChange: deps.onUploadActive,
    now,
    usage,
    quotas,
  });
  const integrity = new Integrity(driver, metadata, {
    verifyReads: config.storage.verifyReads,
    smallBytes: config.storage.verifySmallBytes,
    rememberVerified: config.storage.verifiedDigests,
    log: app.log,
    ...(deps.onIntegrity ? { onEvent: deps.onIntegrity } : {}),
  });
  const pullCounter = config.stats.enabled
    ? new PullCounter({
        store: metadata.pulls,
        keepDays: config.stats.pullDays,
        flushMs: config.stats.flushSeconds * 1000,
        flushEntries: config.stats.flushEntries,
        maxEntries: config.stats.maxPending,
        maxAttempts: config.stats.flushAttempts,
        now,
        log: app.log,
        ...(deps.onPulls ? { onEvent: deps.onPulls } : {}),
      })
    : undefined;
  const pullEvents =
    config.events.enabled && config.events.pulls !== 'off'
      ? new PullEvents({
          events: metadata.events,
          mode: config.events.pulls,
          intervalMs: config.events.pullIntervalSeconds * 1000,
          maxPending: config.stats.maxPending,
          now,
          log: app.log,
        })
      : undefined;
  const sharedConfig = config.storage.sharedReads;
  const sharedReads =
    (sharedConfig.enabled ?? config.storage.driver === 's3')
      ? new SharedReads({
          spoolDir: sharedConfig.spoolDir ?? join(tmpdir(), 'berth-spool'),
          maxSpoolBytes: sharedConfig.maxSpoolBytes,
          onJoin: () => deps.onBlobRead?.('shared_join'),
          log: app.log,
        })
      : undefined;
  if (sharedReads) app.addHook('onClose', async () => sharedReads.close());
  const events = setupEvents(app, { config, events: metadata.events, now, observe: deps.onEventDelivery });
  const manifests = new ManifestService(
    driver,
    metadata,
    {
      requireIndexChildren: config.manifests.requireIndexChildren,
      immutableTags: new ImmutableTagRules(config.immutableTags.rules),
      ...(config.metadata.coalesceTagLookups ? { tagLookups: new LookupCoalescer<ManifestRecord | undefined>((shared) => deps.onTagLookup?.(shared)) } : {}),
    },
    integrity,
    usage,
    quotas,
  );
  const authorizer = deps.authorizer ?? openAccess;
  const proxy = setupProxy(app, { config, namespaces, driver, metadata, manifests, quotas, usage, authorizer, sharedReads, observers: proxyObservers });
  const blobs = new BlobService(driver, metadata, integrity, usage, quotas, {
    ...(sharedReads ? { shared: sharedReads, sharedMinBytes: sharedConfig.minBytes } : {}),
    onStorageRead: () => deps.onBlobRead?.('storage_read'),
  });
  const replication = setupReplication(app, { config, metadata, manifests, blobs, uploads, holder: events.holder, now, observe: deps.onReplication });
  const summaries = new RepositorySummaryCache(metadata, { maxEntries: SUMMARY_CACHE_ENTRIES, ttlMs: SUMMARY_CACHE_TTL_MS, now });
  const ctx: RouteContext = {
    config,
    metadata,
    summaries,
    blobs,
    manifests,
    proxy,
    repositories: new RepositoryService(metadata),
    uploads,
    authorizer,
    pulls: pullCounter ?? NO_PULL_COUNTING,
    pullEvents: pullEvents ?? NO_PULL_EVENTS,
    origin: requestOrigin,
    emit: (event) => {
      if (CHANGES_SUMMARY.has(event.action)) summaries.invalidate(event.repository);
      try {
        deps.onEvent?.(event);
      } catch (err) {
        event.request.log.warn({ err }, 'event sink failed');
      }
    },
    operatorAction: (event) => {
      try {
        deps.onOperatorAction?.(event);
      } catch (err) {
        event.request.log.warn({ err }, 'audit sink failed');
      }
    },
  };

  // Node would answer `Expect: 100-continue` itself, before any route had looked at the request.
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    continueOnFirstRead(req, res);
    app.server.emit('request', req, res);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    discardUnreadBody(request, reply);
    return payload;
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (KNOWN_PATHS.some((re) => re.test(path))) {
      return sendError(reply, new OciError('UNSUPPORTED', `${request.method} is not supported on this endpoint`));
    }
    return sendError(
      reply,
      new OciError('NOT_FOUND', `no such endpoint: ${request.method} ${path.startsWith(REPO_PREFIX) ? 'under /v2/' : path.slice(0, 200)}`),
    );
  });

  if (deps.plugins) await deps.plugins(app);
  for (const routes of [baseRoutes, blobRoutes, uploadRoutes, manifestRoutes, tagRoutes, referrerRoutes]) {
    await app.register(async (scope) => routes(scope, ctx));
  }
  const gcRunner = new GcRunner(app, collector, { limit: gcConfig.batch, now, ...(deps.onGc ? { onEvent: deps.onGc } : {}) });
  await app.register(async (scope) => gcRoutes(scope, ctx, gcRunner));
  await app.register(async (scope) => statsRoutes(scope, ctx, now));
  await app.register(async (scope) => repositoryApiRoutes(scope, ctx));
  await app.register(async (scope) => immutableTagRoutes(scope, ctx));
  await app.register(async (scope) => quotaRoutes(scope, ctx));
  await app.register(async (scope) => eventRoutes(scope, ctx, now));
  await app.register(async (scope) => repositoryManifestRoutes(scope, ctx));
  await app.register(openApiRoutes);
  if (config.ui.enabled) await app.register(async (scope) => uiRoutes(scope, config));
  await app.register(async (scope) => infoRoutes(scope, config));
  const retentionFrom = retentionSources(config, metadata);
  const retention = new Retention({
    metadata,
    usage,
    // Config validation refuses pull rules while stats are off, so "no pulls" then judges nothing.
    pullsOf: deps.pullsOf ?? retentionFrom.pullsOf ?? NO_PULLS,
    isImmutable: deps.isImmutable ?? retentionFrom.isImmutable,
    now,
    holder: randomUUID(),
    leaseMs: config.retention.leaseSeconds * 1000,
  });
  const retentionRunner = new RetentionRunner(app, retention, {
    policies: config.retention.policies,
    batch: config.retention.batch,
    now,
    ...(deps.onRetention ? { onEvent: deps.onRetention } : {}),
  });
  await app.register(async (scope) => retentionRoutes(scope, ctx, retentionRunner));
  await app.register(async (scope) => replicationRoutes(scope, ctx, replication, now));
  await app.register(async (scope) => statusRoutes(scope, ctx, { gc: gcRunner, retention: retentionRunner, replication, now }));

  const sweep = setInterval(() => {
    const cutoff = (deps.now ?? Date.now)() - config.uploads.idleTimeoutSeconds * 1000;
    uploads.sweep(cutoff).catch((err: unknown) => app.log.warn({ err }, 'upload sweep failed'));
  }, config.uploads.sweepIntervalSeconds * 1000);
  sweep.unref();
  app.addHook('onClose', async () => clearInterval(sweep));
  if (config.storage.scrub.enabled) startBackgroundScrub(app, driver, metadata, integrity, config);
  if (gcConfig.enabled) startBackgroundGc(gcRunner, gcConfig.intervalSeconds * 1000);
  app.addHook('onClose', async () => gcRunner.close());
  if (config.retention.enabled) startBackgroundRetention(retentionRunner, config.retention.intervalSeconds * 1000);
  app.addHook('onClose', async () => retentionRunner.close());
  app.addHook('onClose', async () => integrity.settled());
  // After the server stopped taking requests, before main closes the store: the last counts go out.
  app.addHook('onClose', async () => pullCounter?.close());
  app.addHook('onClose', async () => pullEvents?.close());
  app.decorate('uploads', uploads);
  app.decorate('integrity', integrity);
  app.decorate('gc', collector);
  app.decorate('gcRunner', gcRunner);
  app.decorate('pullCounter', pullCounter);
  app.decorate('retentionRunner', retentionRunner);
  app.decorate('events', events);
  app.decorate('pullEvents', pullEvents);
  app.decorate('proxy', proxy);
  app.decorate('replication', replication);
  return app;
}

/** Scrub passes every intervalSeconds; a pass another process runs (the lease) is skipped, not waited for. */
function startBackgroundScrub(app: FastifyInstance, driver: BlobDriver, metadata: MetadataStore, integrity: Integrity, config: BerthConfig): void {
  const { intervalSeconds, bytesPerSecond, leaseSeconds } = config.storage.scrub;
  const stop = new AbortController();
  let running: Promise<void> | undefined;
  const pass = () => {
    if (running) return;
    running = scrub(driver, metadata, integrity, { bytesPerSecond, leaseMs: leaseSeconds * 1000, signal: stop.signal })
      .then((result) => {
        const { bad: _bad, ...summary } = result;
        app.log.info({ scrub: summary }, result.complete ? 'scrub pass finished' : 'scrub pass stopped; the next one resumes from its cursor');
      })
      .catch((err: unknown) => {
        if (err instanceof ScrubBusyError) app.log.debug('scrub skipped: another process holds the lease');
        else if (!stop.signal.aborted) app.log.warn({ err }, 'scrub pass failed');
      })
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(pass, intervalSeconds * 1000);
  timer.unref();
  // The first pass waits until the server is up; later ones follow the interval.
  app.addHook('onReady', async () => {
    setImmediate(pass).unref();
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    stop.abort();
    await running;
  });
}
