import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BerthConfig } from '../config.js';
import type { GcEvent } from '../registry/gc/background.js';
import type { PullCounterEvent } from '../registry/stats/pull-counter.js';
import { IMMUTABLE_OPERATIONS, type ImmutableOperation } from '../registry/immutable/refusal.js';
import type { RetentionRunEvent } from '../registry/retention/background.js';
import { installTrafficCounter, onRequestComplete, trafficOf, type Completion } from './body-bytes.js';
import { REPO_PREFIX } from '../routes/url-rewrite.js';

/** What storage-drivers/blob/instrumented.ts reports after every driver call. */
export interface StorageObservation {
  driver: string;
  op: string;
  seconds: number;
  error?: unknown;
  /** Bytes appended, for `writer.write`. */
  bytes?: number;
}

/** The same for metadata-store calls. */
export interface MetadataObservation {
  store: string;
  op: string;
  seconds: number;
  error?: unknown;
}

export interface MetricsOptions {
  /** Distinct repositories labelled by name before the rest are counted as 'other'. */
  maxRepositoryLabels?: number;
  /** Node process metrics (CPU, memory, event loop, GC); tests building many apps may turn them off. */
  processMetrics?: boolean;
}

const OTHER_REPOSITORY = 'other';
const UNMATCHED_ROUTE = 'unmatched';

/** Latencies from a cached HEAD to a multi-GiB blob stream. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const OP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** From an idle pass (one queue read) to a batch of deletions against a slow bucket. */
const GC_PASS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];
/** A scrape waits this long for the GC queue's size, then leaves it out rather than stall. */
const GC_QUEUE_READ_TIMEOUT_MS = 1000;

export type GcPassEvent = Extract<GcEvent, { kind: 'pass' }>;
export type GcQueueSource = () => Promise<{ queued: number; due: number }>;

/** Bounded label for an error: its class name, or its code for plain Errors. */
export function errorLabel(error: unknown): string {
  let label: string;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    label = error.name !== 'Error' ? error.name : typeof code === 'string' ? code : 'Error';
  } else if (typeof error === 'string') {
    label = error;
  } else {
    label = 'unknown';
  }
  return label.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64);
}

const routeOverrides = new WeakMap<FastifyRequest, string>();

/** For a request whose route template says too little; the label must come from a small fixed set. */
export function labelRoute(request: FastifyRequest, template: string): void {
  routeOverrides.set(request, template);
}

function routeLabel(request: FastifyRequest): string {
  const template = routeOverrides.get(request) ?? request.routeOptions.url ?? UNMATCHED_ROUTE;
  // Routes are registered under the internal rewrite (url-rewrite.ts); operators know the API's paths.
  return template.startsWith(REPO_PREFIX) ? `/v2/${template.slice(REPO_PREFIX.length)}` : template;
}

/**
 * Every Berth metric, in a registry of its own so that each app (and each test) has separate
 * counters. Names start with `berth_`; process metrics keep their standard names.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly maxRepositoryLabels: number;
  private readonly repositories = new Set<string>();

  readonly httpDuration = new Histogram({
    name: 'berth_http_request_duration_seconds',
    help: 'Time from request received to response finished, by route template, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });
  readonly receivedBytes = new Counter({
    name: 'berth_http_received_bytes_total',
    help: 'Request body bytes received, by route template.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly sentBytes = new Counter({
    name: 'berth_http_sent_bytes_total',
    help: 'Response body bytes sent, by route template.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly uploadsInProgress = new Gauge({
    name: 'berth_uploads_in_progress',
    help: 'Requests currently streaming blob upload data into this process.',
    registers: [this.registry],
  });
  readonly pushes = new Counter({
    name: 'berth_pushes_total',
    help: `Manifests pushed, by repository (names beyond the label cap are counted as '${OTHER_REPOSITORY}').`,
    labelNames: ['repository'] as const,
    registers: [this.registry],
  });
  readonly pulls = new Counter({
    name: 'berth_pulls_total',
    help: `Manifests pulled, by repository (names beyond the label cap are counted as '${OTHER_REPOSITORY}').`,
    labelNames: ['repository'] as const,
    registers: [this.registry],
  });
  readonly storageDuration = new Histogram({
    name: 'berth_storage_operation_duration_seconds',
    help: 'Blob storage driver call latency, by driver and operation.',
    labelNames: ['driver', 'op'] as const,
    buckets: OP_BUCKETS,
    registers: [this.registry],
  });
  readonly storageErrors = new Counter({
    name: 'berth_storage_operation_errors_total',
    help: 'Blob storage driver calls that failed, by driver, operation and error.',
    labelNames: ['driver', 'op', 'error'] as const,
    registers: [this.registry],
  });
  readonly storageWrittenBytes = new Counter({
    name: 'berth_storage_written_bytes_total',
    help: 'Bytes appended to blob storage by upload writers, by driver.',
    labelNames: ['driver'] as const,
    registers: [this.registry],
  });
  readonly metadataDuration = new Histogram({
    name: 'berth_metadata_operation_duration_seconds',
    help: 'Metadata store call latency, by store and operation.',
    labelNames: ['store', 'op'] as const,
    buckets: OP_BUCKETS,
    registers: [this.registry],
  });
  readonly metadataErrors = new Counter({
    name: 'berth_metadata_operation_errors_total',
    help: 'Metadata store calls that failed, by store, operation and error.',
    labelNames: ['store', 'op', 'error'] as const,
    registers: [this.registry],
  });
  readonly blobStorageReads = new Counter({
    name: 'berth_blob_storage_reads_total',
    help: 'Reads of blob bytes opened on the storage driver to answer GETs (a shared read counts once).',
    registers: [this.registry],
  });
  readonly blobSharedReadJoins = new Counter({
    name: 'berth_blob_shared_read_joins_total',
    help: 'Blob GETs served from a storage read already in flight in this process instead of a read of their own.',
    registers: [this.registry],
  });
  readonly tagLookups = new Counter({
    name: 'berth_manifest_tag_lookups_total',
    help: 'Manifest HEADs and GETs by tag, by whether they shared a metadata lookup with others in flight (shared="true") or made their own.',
    labelNames: ['shared'] as const,
    registers: [this.registry],
  });
  readonly integrityFailures = new Counter({
    name: 'berth_storage_integrity_failures_total',
    help: 'Stored objects found corrupt (and quarantined) or missing, by kind (blob, manifest), reason (digest_mismatch, size_mismatch, missing) and who found it (read, scrub).',
    labelNames: ['kind', 'reason', 'found_by'] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'berth_auth_failures_total',
    help: 'Requests refused by authentication or authorization, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly immutableRefusals = new Counter({
    name: 'berth_immutable_tag_refusals_total',
    help: 'Requests refused because an immutable tag forbids them, by operation: overwrite (a push moving the tag), delete_tag, delete_manifest.',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  readonly gcPasses = new Counter({
    name: 'berth_gc_passes_total',
    help: 'Background garbage-collection passes of this process, by result: ok, refused (metadata not known complete), failed.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly gcBlobsQuarantined = new Counter({
    name: 'berth_gc_blobs_quarantined_total',
    help: 'Unreferenced blobs moved to the quarantine by background GC (bytes kept until gc.quarantineSeconds).',
    registers: [this.registry],
  });
  readonly gcBlobsDeleted = new Counter({
    name: 'berth_gc_blobs_deleted_total',
    help: 'Blobs (and manifests’ own bytes) deleted from storage for good by background GC.',
    registers: [this.registry],
  });
  readonly gcBytesFreed = new Counter({
    name: 'berth_gc_bytes_freed_total',
    help: 'Bytes deleted from storage by background GC.',
    registers: [this.registry],
  });
  readonly gcManifestsDeleted = new Counter({
    name: 'berth_gc_manifests_deleted_total',
    help: 'Untagged manifests and orphaned referrers deleted by background GC.',
    registers: [this.registry],
  });
  readonly gcLinksRemoved = new Counter({
    name: 'berth_gc_links_removed_total',
    help: 'Repository blob links removed by background GC (the repository no longer references the blob).',
    registers: [this.registry],
  });
  readonly gcErrors = new Counter({
    name: 'berth_gc_errors_total',
    help: 'Queue items a background GC pass could not finish (a later pass retries them); see the log.',
    registers: [this.registry],
  });
  readonly gcPassDuration = new Histogram({
    name: 'berth_gc_pass_duration_seconds',
    help: 'Duration of background GC passes, whatever their result.',
    buckets: GC_PASS_BUCKETS,
    registers: [this.registry],
  });
  readonly gcLastPass = new Gauge({
    name: 'berth_gc_last_pass_timestamp_seconds',
    help: 'When the last background GC pass that ran (result ok) finished, in seconds since the epoch.',
    // A cluster's workers each run passes: the latest counts.
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly gcQueue = new Gauge({
    name: 'berth_gc_queue_items',
    help: 'Items in the shared GC queue: queued (all) and due (their time has come). Read from the metadata store at scrape time.',
    labelNames: ['state'] as const,
    // Every process reads the same shared queue: summing would count it once per process.
    aggregator: 'max',
    registers: [this.registry],
    collect: () => this.collectGcQueue(),
  });
  private gcQueueSource: GcQueueSource | undefined;
  // Pull statistics: no repository label, so the cardinality stays a handful of series.
  readonly pullStatsCounted = new Counter({
    name: 'berth_pull_stats_counted_total',
    help: 'Pulls (manifest GETs) counted for pull statistics, by kind: by tag, or by digest (credited to its tags at flush).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly pullStatsFlushes = new Counter({
    name: 'berth_pull_stats_flushes_total',
    help: 'Batches of pull counts written to the metadata store, by result: ok, failed (retried at the next flush until stats.flushAttempts).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly pullStatsPending = new Gauge({
    name: 'berth_pull_stats_pending_entries',
    help: 'Distinct pull counts held in memory, waiting for a flush or for the retry of a refused one (at most stats.maxPending per process).',
    registers: [this.registry],
  });
  readonly pullStatsDropped = new Counter({
    name: 'berth_pull_stats_dropped_total',
    help: 'Pulls left out of pull statistics, by reason: overflow (stats.maxPending reached), retries (flush refused stats.flushAttempts times), shutdown (store refused the last flush).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly retentionRuns = new Counter({
    name: 'berth_retention_runs_total',
    help: 'Retention runs of this process (background and on request; dry runs not counted), by result: ok, failed.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly retentionTagsDeleted = new Counter({
    name: 'berth_retention_tags_deleted_total',
    help: 'Tags deleted by retention policies.',
    registers: [this.registry],
  });
  readonly retentionManifestsDeleted = new Counter({
    name: 'berth_retention_manifests_deleted_total',
    help: "Untagged manifests deleted by retention policies' untagged rules.",
    registers: [this.registry],
  });
  readonly retentionRefusals = new Counter({
    name: 'berth_retention_refusals_total',
    help: 'Repositories a retention run left alone because of the guard, by guard: fraction (more than maxDeleteFraction), all (every tag).',
    labelNames: ['guard'] as const,
    registers: [this.registry],
  });
  readonly retentionLastRun = new Gauge({
    name: 'berth_retention_last_run_timestamp_seconds',
    help: 'When the last retention run of this process that finished (result ok) ended, in seconds since the epoch.',
    aggregator: 'max',
    registers: [this.registry],
  });

  constructor(options: MetricsOptions = {}) {
    this.maxRepositoryLabels = options.maxRepositoryLabels ?? 200;
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    // Present from the start, so rate() and increase() see the first pass.
    for (const result of ['ok', 'refused', 'failed']) this.gcPasses.inc({ result }, 0);
    for (const kind of ['tag', 'digest']) this.pullStatsCounted.inc({ kind }, 0);
    for (const result of ['ok', 'failed']) this.pullStatsFlushes.inc({ result }, 0);
    for (const reason of ['overflow', 'retries', 'shutdown']) this.pullStatsDropped.inc({ reason }, 0);
    for (const operation of IMMUTABLE_OPERATIONS) this.immutableRefusals.inc({ operation }, 0);
    for (const result of ['ok', 'failed']) this.retentionRuns.inc({ result }, 0);
    for (const guard of ['fraction', 'all']) this.retentionRefusals.inc({ guard }, 0);
  }

  /** Keeps a repository label set bounded: the first N names are kept, later ones become 'other'. */
  repositoryLabel(repository: string): string {
    if (this.repositories.has(repository)) return repository;
    if (this.repositories.size >= this.maxRepositoryLabels) return OTHER_REPOSITORY;
    this.repositories.add(repository);
    return repository;
  }

  recordPush(repository: string): void {
    this.pushes.inc({ repository: this.repositoryLabel(repository) });
  }

  recordPull(repository: string): void {
    this.pulls.inc({ repository: this.repositoryLabel(repository) });
  }

  recordImmutableRefusal(operation: ImmutableOperation): void {
    this.immutableRefusals.inc({ operation });
  }

  /** Reasons should come from a small fixed set, e.g. 'invalid_credentials', 'invalid_token', 'denied'. */
  recordAuthFailure(reason: string): void {
    this.authFailures.inc({ reason });
  }

  recordIntegrityFailure(event: { kind: string; reason: string; foundBy: string }): void {
    this.integrityFailures.inc({ kind: event.kind, reason: event.reason, found_by: event.foundBy });
  }

  recordGcPass(event: GcPassEvent): void {
    this.gcPasses.inc({ result: event.result });
    if (event.result !== 'ok') {
      this.gcPassDuration.observe(event.durationMs / 1000);
      return;
    }
    const { summary } = event;
    this.gcPassDuration.observe(summary.durationMs / 1000);
    this.gcBlobsQuarantined.inc(summary.blobsQuarantined);
    this.gcBlobsDeleted.inc(summary.blobsDeleted);
    this.gcBytesFreed.inc(summary.bytesFreed);
    this.gcManifestsDeleted.inc(summary.manifestsDeleted);
    this.gcLinksRemoved.inc(summary.linksRemoved);
    this.gcErrors.inc(summary.errors);
    this.gcLastPass.set(Date.now() / 1000);
  }

  recordPullCounter(event: PullCounterEvent): void {
    if (event.kind === 'counted') this.pullStatsCounted.inc({ kind: event.by });
    else if (event.kind === 'flush') this.pullStatsFlushes.inc({ result: event.result });
    else this.pullStatsDropped.inc({ reason: event.reason }, event.pulls);
    this.pullStatsPending.set(event.pending);
  }

  recordRetention(event: RetentionRunEvent): void {
    if (event.kind === 'tag_deleted') this.retentionTagsDeleted.inc();
    else if (event.kind === 'manifest_deleted') this.retentionManifestsDeleted.inc();
    else if (event.kind === 'refused') this.retentionRefusals.inc({ guard: event.rule });
    else if (event.kind === 'run') {
      this.retentionRuns.inc({ result: event.result });
      if (event.result === 'ok') this.retentionLastRun.set(Date.now() / 1000);
    }
  }

  /** Where berth_gc_queue_items is read from at each scrape (the metadata store's queueSize). */
  observeGcQueue(source: GcQueueSource): void {
    this.gcQueueSource = source;
  }

  private async collectGcQueue(): Promise<void> {
    const source = this.gcQueueSource;
    if (!source) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error('gc queue size read timed out')), GC_QUEUE_READ_TIMEOUT_MS);
      });
      const size = await Promise.race([source(), timeout]);
      this.gcQueue.set({ state: 'queued' }, size.queued);
      this.gcQueue.set({ state: 'due' }, size.due);
    } catch {
      // A stale size would look like a stuck queue; the metadata error metrics tell why it is missing.
      this.gcQueue.reset();
    } finally {
      clearTimeout(timer);
    }
  }

  /** Call when upload data starts streaming in; call the returned function (once or more) when it stops. */
  uploadStarted(): () => void {
    this.uploadsInProgress.inc();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.uploadsInProgress.dec();
    };
  }

  /** Matches the callback of `instrument(driver, observe)`. */
  readonly observeStorage = (o: StorageObservation): void => {
    this.storageDuration.observe({ driver: o.driver, op: o.op }, o.seconds);
    if (o.error !== undefined) this.storageErrors.inc({ driver: o.driver, op: o.op, error: errorLabel(o.error) });
    if (o.bytes) this.storageWrittenBytes.inc({ driver: o.driver }, o.bytes);
  };

  readonly observeMetadata = (o: MetadataObservation): void => {
    this.metadataDuration.observe({ store: o.store, op: o.op }, o.seconds);
    if (o.error !== undefined) this.metadataErrors.inc({ store: o.store, op: o.op, error: errorLabel(o.error) });
  };

  observeRequest(request: FastifyRequest, reply: FastifyReply, completion?: Completion): void {
    const route = routeLabel(request);
    const status = String(completion?.status ?? reply.statusCode);
    this.httpDuration.observe({ route, method: request.method, status }, reply.elapsedTime / 1000);
    const { received, sent } = trafficOf(request);
    if (received > 0) this.receivedBytes.inc({ route }, received);
    if (sent > 0) this.sentBytes.inc({ route }, sent);
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Anything that renders the Prometheus text format: one process's Metrics, or a cluster's aggregate. */
export interface MetricsSource {
  exposition(): Promise<string>;
  readonly contentType: string;
}

type MetricsSettings = BerthConfig['metrics'];

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Constant-time comparison of the bearer token; hashing first makes the lengths equal. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const presented = /^Bearer\s+(.+)$/i.exec(header ?? '')?.[1]?.trim() ?? '';
  return timingSafeEqual(sha256(presented), sha256(token));
}

function serveMetrics(app: FastifyInstance, metrics: MetricsSource, settings: MetricsSettings): void {
  app.get(settings.path, { logLevel: 'warn' }, async (request, reply) => {
    if (settings.token !== undefined && !tokenMatches(request.headers.authorization, settings.token)) {
      return reply.code(401).header('www-authenticate', 'Bearer realm="metrics"').send({ error: 'a valid bearer token is required' });
    }
    const body = await metrics.exposition();
    return reply.header('content-type', metrics.contentType).header('cache-control', 'no-store').send(body);
  });
}

export interface MetricsPluginOptions {
  metrics: Metrics;
  config: Pick<BerthConfig, 'metrics'>;
}

/**
 * Measures every request of the instance it is registered on (it does not create an encapsulation
 * context) and, unless `metrics.port` moves them elsewhere, serves the metrics at `metrics.path`.
 */
export async function metricsPlugin(app: FastifyInstance, options: MetricsPluginOptions): Promise<void> {
  const { metrics, config } = options;
  if (!config.metrics.enabled) return;
  installTrafficCounter(app);
  onRequestComplete(app, (request, reply, completion) => metrics.observeRequest(request, reply, completion));
  if (config.metrics.port === undefined) serveMetrics(app, metrics, config.metrics);
}
(metricsPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

/** The separate metrics listener used when `metrics.port` is set. Close it with `close()`. */
export async function startMetricsServer(options: {
  metrics: MetricsSource;
  config: Pick<BerthConfig, 'metrics' | 'http'>;
}): Promise<{ port: number; close: () => Promise<void> }> {
  const { metrics, config } = options;
  const server = Fastify({ logger: false });
  serveMetrics(server, metrics, config.metrics);
  await server.listen({ port: config.metrics.port ?? 0, host: config.metrics.host ?? config.http.host });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : (config.metrics.port ?? 0);
  return { port, close: () => server.close() };
}
