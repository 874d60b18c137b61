import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { AuditLog } from './audit.js';
import type { BerthConfig } from '../config.js';
import {
  authFailureRecorder,
  gcEventRecorder,
  operatorActionRecorder,
  registryEventRecorder,
  replicationRecorder,
  retentionEventRecorder,
  type ObservedOperatorAction,
  type ObservedRegistryEvent,
} from './event-recorders.js';
import { accessLogPlugin, loggerOptions, type LogDestination } from './logging.js';
import { Metrics, metricsPlugin, startMetricsServer } from './metrics.js';
import { QuotaMetrics } from './quota-metrics.js';
import { ProxyMetrics } from './proxy-metrics.js';
import { ReplicationMetrics } from './replication-metrics.js';
import type { ReplicationObservation } from '../registry/replication/service.js';
import type { FillEvent } from '../registry/proxy/fills.js';
import type { UpstreamEvent } from '../registry/proxy/upstream.js';
import { EventMetrics } from './event-metrics.js';
import type { LaneObservation } from '../registry/events/lane.js';
import type { RegistryEvent } from '../registry/events/event.js';
import type { QuotaStage } from '../registry/quotas/service.js';
import { assertReady, healthRoutes, type HealthCheck } from '../routes/health.js';
import type { StorageStack } from '../storage-stack.js';
import type { GcEvent } from '../registry/gc/background.js';
import type { PullCounterEvent } from '../registry/stats/pull-counter.js';
import type { RetentionRunEvent } from '../registry/retention/background.js';
import { asTlsServer, httpsOptions, reloadOnSighup } from './tls.js';

export interface OperationsOptions {
  config: BerthConfig;
  /** From buildStorageStack, observed by `metrics` (its observeStorage / observeMetadata). */
  storage: StorageStack;
  /** The metrics the storage stack reports to. */
  metrics: Metrics;
  /** Tests: capture the JSON log instead of stdout. */
  logDestination?: LogDestination;
  /** Tests: a MemoryAuditSink-backed log; default from `config.audit`. */
  audit?: AuditLog;
  /** A cluster worker: the primary serves the aggregated metrics, so no metrics listener here. */
  clusterWorker?: boolean;
}

/**
 * Everything operational around the registry app, built once per process: logging, metrics, audit,
 * health, TLS. main.ts creates it, passes its parts to buildApp, calls `started` after listen and
 * `close` after the app has closed.
 */
export interface Operations {
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  /** The storage stack the health checks ping: give this one to buildApp. */
  readonly storage: StorageStack;
  readonly checks: Record<string, HealthCheck>;
  /** Spread into Fastify's options: JSON logger, request ids, and `https` when TLS is configured. */
  readonly serverOptions: FastifyServerOptions & Record<string, unknown>;
  /** For buildApp's `plugins`: access log, metrics hooks and endpoint, /healthz and /readyz. */
  plugins(app: FastifyInstance): Promise<void>;
  /** For buildApp's `onEvent` (RouteContext.emit). */
  onEvent(event: ObservedRegistryEvent): void;
  /** For buildApp's `onOperatorAction`: management API changes, audited. */
  onOperatorAction(event: ObservedOperatorAction): void;
  /** For buildApp's `onUploadActive`. */
  onUploadActive(delta: 1 | -1): void;
  /** For buildApp's `onIntegrity`. */
  onIntegrity(event: { kind: string; reason: string; foundBy: string }): void;
  /** For buildApp's `onBlobRead`: storage reads opened and shared-read joins counted. */
  onBlobRead(event: 'storage_read' | 'shared_join'): void;
  /** For buildApp's `onTagLookup`: tag resolutions, by whether they shared a lookup. */
  onTagLookup(shared: boolean): void;
  /** For buildApp's `onGc`: background GC passes counted, its deletions audited. */
  onGc(event: GcEvent): void;
  /** For buildApp's `onPulls`: pull counting and its flushes in the metrics. */
  onPulls(event: PullCounterEvent): void;
  /** For buildApp's `onQuotaRefused`: refusals by stage and namespace. */
  onQuotaRefused(stage: QuotaStage, ns: string): void;
  /** For buildApp's `onProxyUpstream` and `onProxyStale`: upstream requests by status, stale answers. */
  onProxyUpstream(event: UpstreamEvent): void;
  onProxyStale(upstream: string): void;
  /** For buildApp's `onProxyFill`: fills started and finished, requests by how they were served, spool bytes. */
  onProxyFill(event: FillEvent): void;
  /** For buildApp's `onRetention`: runs, deletions and refusals counted; deletions and refusals audited. */
  onRetention(event: RetentionRunEvent): void;
  /** For buildApp's `onEventDelivery`: deliveries, failures, dead letters and backlog per endpoint. */
  onEventDelivery(observation: LaneObservation<RegistryEvent>): void;
  /** For buildApp's `onReplication`: tags, failures, passes, bytes and lag per rule; changes on a target audited. */
  onReplication(observation: ReplicationObservation): void;
  /** For the auth layer: a refused login or token. */
  onAuthFailure(failure: { actor: string; reason: string; request: { ip: string; id: string } }): void;
  /** Fails with one line per unreachable dependency. */
  assertReady(timeoutMs?: number): Promise<void>;
  /** After `app.listen`: the separate metrics listener and the SIGHUP certificate reload. */
  started(app: FastifyInstance): Promise<void>;
  /** The separate metrics listener's port, once started. */
  metricsPort(): number | undefined;
  /** First step of shutdown: /readyz answers 503 so load balancers move away. */
  beginDrain(): void;
  /** Last step of shutdown, after app.close(): metrics listener, SIGHUP handler, audit file. */
  close(): Promise<void>;
}

export function createOperations(options: OperationsOptions): Operations {
  const { config } = options;
  const { metrics, storage } = options;
  const audit = options.audit ?? AuditLog.fromConfig(config);
  const checks: Record<string, HealthCheck> = { storage: () => storage.driver.ping(), metadata: () => storage.metadata.ping() };
  const serverOptions: FastifyServerOptions & Record<string, unknown> = {
    ...loggerOptions(config, options.logDestination),
    ...(config.http.tls ? { https: httpsOptions(config.http.tls) } : {}),
  };
  // The queue is shared by every process; its size is one cheap read per scrape.
  metrics.observeGcQueue(() => storage.metadata.gc.queueSize(Date.now()));
  const quotaMetrics = new QuotaMetrics(metrics.registry, config.quotas, storage.metadata);
  const eventMetrics = new EventMetrics(
    metrics.registry,
    config.events.endpoints.map((e) => e.name),
  );
  const proxyMetrics = new ProxyMetrics(
    metrics.registry,
    config.proxy.upstreams.map((u) => u.namespace),
  );
  const replicationMetrics = new ReplicationMetrics(
    metrics.registry,
    config.replication.rules.filter((r) => r.enabled).map((r) => r.name),
  );
  let draining = false;
  let metricsPort: number | undefined;
  const cleanups: (() => Promise<void> | void)[] = [];

  return {
    metrics,
    audit,
    storage,
    checks,
    serverOptions,
    async plugins(app) {
      await app.register(accessLogPlugin, { config });
      await app.register(metricsPlugin, { metrics, config });
      await app.register(healthRoutes, { checks, isDraining: () => draining });
    },
    onEvent: registryEventRecorder({ audit, metrics }),
    onOperatorAction: operatorActionRecorder(audit),
    onUploadActive(delta) {
      if (delta > 0) metrics.uploadsInProgress.inc();
      else metrics.uploadsInProgress.dec();
    },
    onAuthFailure: authFailureRecorder({ audit, metrics }),
    onIntegrity: (event) => metrics.recordIntegrityFailure(event),
    onTagLookup: (shared) => metrics.tagLookups.inc({ shared: shared ? 'true' : 'false' }),
    onBlobRead: (event) => (event === 'storage_read' ? metrics.blobStorageReads.inc() : metrics.blobSharedReadJoins.inc()),
    onGc: gcEventRecorder({ audit, metrics }),
    onPulls: (event) => metrics.recordPullCounter(event),
    onQuotaRefused: (stage, ns) => quotaMetrics.recordRefusal(stage, ns),
    onProxyUpstream: (event) => proxyMetrics.recordUpstream(event),
    onProxyStale: (upstream) => proxyMetrics.recordStale(upstream),
    onProxyFill: (event) => proxyMetrics.recordFill(event),
    onRetention: retentionEventRecorder({ audit, metrics }),
    onEventDelivery: (observation) => eventMetrics.record(observation),
    onReplication: replicationRecorder({ audit, metrics: replicationMetrics }),
    assertReady: (timeoutMs) => assertReady(checks, timeoutMs),
    async started(app) {
      if (config.metrics.enabled && config.metrics.port !== undefined && !options.clusterWorker) {
        const server = await startMetricsServer({ metrics, config });
        metricsPort = server.port;
        app.log.info({ port: server.port }, 'metrics listener started');
        cleanups.push(() => server.close());
      }
      if (config.http.tls) cleanups.push(reloadOnSighup(asTlsServer(app.server), config.http.tls, app.log));
    },
    metricsPort: () => metricsPort,
    beginDrain() {
      draining = true;
    },
    async close() {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
      await audit.close();
    },
  };
}
