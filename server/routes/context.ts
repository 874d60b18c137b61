import type { ProxyRuntime } from '../registry/proxy/setup.js';
import type { FastifyRequest } from 'fastify';
import type { Authorizer, Principal } from '../../auth/types.js';
import type { BerthConfig } from '../config.js';
import type { ImmutableOperation } from '../registry/immutable/refusal.js';
import type { BlobService } from '../registry/blobs.js';
import type { ManifestService } from '../registry/manifests.js';
import type { RepositoryService } from '../registry/repositories.js';
import type { RepositorySummaryCache } from '../registry/summary-cache.js';
import type { PullRecorder } from '../registry/stats/pull-counter.js';
import type { PullEventRecorder } from '../registry/events/pull-events.js';
import type { UploadService } from '../registry/uploads.js';
import type { EventOrigin } from '../../storage-drivers/metadata/event-types.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';

/** Something worth recording for operators (audit log, per-repository metrics). */
export interface RegistryEvent {
  action: 'push' | 'pull' | 'delete' | 'tag_moved' | 'blob_push' | 'blob_mount' | 'blob_delete' | 'immutable_refused';
  repository: string;
  digest?: string;
  tag?: string;
  previousDigest?: string;
  /** For immutable_refused: what was refused, and the rule that refused it. */
  operation?: ImmutableOperation;
  rule?: string;
  principal: Principal;
  request: FastifyRequest;
}

/** A change an operator made through the management API: audited. */
export interface OperatorAction {
  action: 'events_replayed' | 'events_discarded' | 'api_tag_deleted' | 'api_manifest_deleted';
  /** The event endpoint acted on (events_*). */
  endpoint?: string;
  /** The repository acted on (api_*), with the tag or digest. */
  repository?: string;
  tag?: string;
  digest?: string;
  /** What was done: since:<ISO time>, dead_letters, id:<id> or all. */
  reason: string;
  principal: Principal;
  request: FastifyRequest;
}

/** What every /v2/ route needs; built once per app. */
export interface RouteContext {
  config: BerthConfig;
  blobs: BlobService;
  uploads: UploadService;
  manifests: ManifestService;
  /** The pull-through cache, consulted for repositories in a proxy namespace; undefined when none is configured. */
  proxy?: ProxyRuntime | undefined;
  repositories: RepositoryService;
  /** The management API's repository summaries; `emit` drops a repository's entry on a change here. */
  summaries: RepositorySummaryCache;
  metadata: MetadataStore;
  authorizer: Authorizer;
  /** Pull statistics: a manifest GET is counted here, in memory (stats.enabled). */
  pulls: PullRecorder;
  /** Pull events (events.pulls): a manifest GET is gathered here, in memory. */
  pullEvents: PullEventRecorder;
  emit(event: RegistryEvent): void;
  /** An operator's change through the management API, for the audit log. */
  operatorAction(event: OperatorAction): void;
  /** Who a change is recorded for in the event outbox; undefined when events are off. */
  origin(request: FastifyRequest, principal: Principal): EventOrigin | undefined;
}
