import type { GcEvent } from '../registry/gc/background.js';
import type { RetentionRunEvent } from '../registry/retention/background.js';
import type { RunSummary } from '../registry/retention/retention.js';
import type { GcSummary } from '../registry/gc/collector.js';
import type { AuditAction, AuditEvent, AuditLog, GcAuditCounts, ReplicationAuditCounts, RetentionAuditCounts } from './audit.js';
import type { ImmutableOperation } from '../registry/immutable/refusal.js';
import type { ReplicationObservation } from '../registry/replication/service.js';
import type { RunSummary as ReplicationRunSummary } from '../registry/replication/rule-state.js';
import type { TagOutcome } from '../registry/replication/sync.js';
import type { ReplicationMetrics } from './replication-metrics.js';
import type { Metrics } from './metrics.js';

/** The parts of a route's RegistryEvent (server/routes/context.ts) that operators are told about. */
export interface ObservedRegistryEvent {
  action: 'push' | 'pull' | 'delete' | 'tag_moved' | 'blob_push' | 'blob_mount' | 'blob_delete' | 'immutable_refused';
  repository: string;
  digest?: string;
  tag?: string;
  previousDigest?: string;
  /** For immutable_refused: overwrite, delete_tag or delete_manifest, and the rule's name. */
  operation?: ImmutableOperation;
  rule?: string;
  principal: { subject: string; kind: 'user' | 'robot' | 'anonymous' };
  request: { ip: string; id: string };
}

/** Builds RouteContext.emit: every event goes to the audit log; pushes, pulls and immutable-tag refusals also to metrics. */
export function registryEventRecorder(deps: { audit: AuditLog; metrics?: Metrics }): (event: ObservedRegistryEvent) => void {
  return (event) => {
    if (event.action === 'push') deps.metrics?.recordPush(event.repository);
    if (event.action === 'pull') deps.metrics?.recordPull(event.repository);
    if (event.action === 'immutable_refused' && event.operation) deps.metrics?.recordImmutableRefusal(event.operation);
    deps.audit.emit({
      action: event.action satisfies AuditAction,
      actor: event.principal.subject || 'anonymous',
      actorKind: event.principal.kind,
      repository: event.repository,
      digest: event.digest,
      tag: event.tag,
      previousDigest: event.previousDigest,
      reason: event.operation,
      rule: event.rule,
      clientAddress: event.request.ip,
      requestId: event.request.id,
    });
  };
}

/** The parts of a route's OperatorAction (server/routes/context.ts) the audit log keeps. */
export interface ObservedOperatorAction {
  action: 'events_replayed' | 'events_discarded' | 'api_tag_deleted' | 'api_manifest_deleted';
  endpoint?: string;
  repository?: string;
  tag?: string;
  digest?: string;
  reason: string;
  principal: { subject: string; kind: 'user' | 'robot' | 'anonymous' };
  request: { ip: string; id: string };
}

/** Builds RouteContext.operatorAction: one audit line per change. */
export function operatorActionRecorder(audit: AuditLog): (event: ObservedOperatorAction) => void {
  return (event) =>
    audit.emit({
      action: event.action satisfies AuditAction,
      actor: event.principal.subject || 'anonymous',
      actorKind: event.principal.kind,
      endpoint: event.endpoint,
      repository: event.repository,
      tag: event.tag,
      digest: event.digest,
      reason: event.reason,
      clientAddress: event.request.ip,
      requestId: event.request.id,
    });
}

/** For the auth layer: a refused login or token request, counted and audited once. */
export function authFailureRecorder(deps: { audit: AuditLog; metrics?: Metrics }) {
  return (failure: { actor: string; reason: string; request: { ip: string; id: string } }): void => {
    deps.metrics?.recordAuthFailure(failure.reason);
    deps.audit.emit({
      action: 'login_failed',
      actor: failure.actor || 'anonymous',
      reason: failure.reason,
      clientAddress: failure.request.ip,
      requestId: failure.request.id,
    });
  };
}

/** The counts of a GC summary that audit lines carry. */
export function gcAuditCounts(summary: GcSummary): GcAuditCounts {
  const { manifestsDeleted, blobsQuarantined, blobsDeleted, bytesFreed, linksRemoved, uploadsExpired, errors } = summary;
  return { manifestsDeleted, blobsQuarantined, blobsDeleted, bytesFreed, linksRemoved, uploadsExpired, errors };
}

/**
 * For buildApp's `onGc` (background GC): every pass is counted; each manifest deleted gets an audit
 * line, and so does each pass that removed anything, with its counts (blobs are too many to list:
 * the pass line counts them). Expired uploads alone do not make a pass worth a line: the regular
 * upload sweep ends them unaudited too.
 */
export function gcEventRecorder(deps: { audit: AuditLog; metrics?: Metrics }): (event: GcEvent) => void {
  return (event) => {
    if (event.kind === 'action') {
      if (event.action === 'gc_manifest_deleted') {
        deps.audit.emit({
          action: 'gc_manifest_deleted',
          actor: 'gc',
          actorKind: 'system',
          repository: event.repository,
          digest: event.digest,
          reason: event.reason,
        });
      }
      return;
    }
    deps.metrics?.recordGcPass(event);
    if (event.result !== 'ok') return;
    const { summary } = event;
    if (summary.manifestsDeleted + summary.blobsQuarantined + summary.blobsDeleted + summary.linksRemoved === 0) return;
    deps.audit.emit({ action: 'gc_pass', actor: 'gc', actorKind: 'system', gc: gcAuditCounts(summary) });
  };
}

/** The counts of a retention run that its audit line carries. */
export function retentionAuditCounts(summary: RunSummary): RetentionAuditCounts {
  const { repositories, tagsDeleted, tagsChanged, manifestsDeleted, refused, busy, failed } = summary;
  return { repositories, tagsDeleted, tagsChanged, manifestsDeleted, refused, busy, failed, ...(summary.forced ? { forced: true } : {}) };
}

/**
 * The audit line of one retention event, or undefined when it is not worth one: every deleted tag and
 * manifest with its policy and reason, every refusal, and each run that did or refused anything.
 */
export function retentionAuditEvent(event: RetentionRunEvent): Omit<AuditEvent, 'actor'> | undefined {
  switch (event.kind) {
    case 'tag_deleted':
      return {
        action: 'retention_tag_deleted',
        repository: event.repository,
        tag: event.tag,
        digest: event.digest,
        policy: event.policy,
        reason: event.reason,
      };
    case 'manifest_deleted':
      return { action: 'retention_manifest_deleted', repository: event.repository, digest: event.digest, policy: event.policy, reason: event.reason };
    case 'refused':
      return { action: 'retention_refused', repository: event.repository, policy: event.policy, reason: event.message };
    case 'run': {
      if (event.result === 'failed') return { action: 'retention_run', reason: 'failed' };
      const s = event.summary;
      if (!s || s.tagsDeleted + s.manifestsDeleted + s.refused + s.failed === 0) return undefined;
      return { action: 'retention_run', retention: retentionAuditCounts(s) };
    }
    case 'repository':
      return undefined;
  }
}

/** For buildApp's `onRetention` (background and API runs): counted, and audited as the system's. */
export function retentionEventRecorder(deps: { audit: AuditLog; metrics?: Metrics }): (event: RetentionRunEvent) => void {
  return (event) => {
    deps.metrics?.recordRetention(event);
    const line = retentionAuditEvent(event);
    if (line) deps.audit.emit({ ...line, actor: 'retention', actorKind: 'system' });
  };
}

/** The audit action of each tag outcome that changed the target; the others (in_sync, not_on_source) changed nothing. */
const REPLICATION_TAG_ACTIONS: Partial<Record<TagOutcome, AuditAction>> = {
  copied: 'replication_tag_copied',
  overwritten: 'replication_tag_overwritten',
  backed_up: 'replication_tag_backed_up',
  deleted: 'replication_tag_deleted',
  conflict_skipped: 'replication_conflict_skipped',
};

/** The outcomes a pass line counts as changes: a pass with none, no failure and a good end is not worth a line. */
const REPLICATION_CHANGES: readonly TagOutcome[] = ['copied', 'overwritten', 'backed_up', 'deleted', 'conflict_skipped'];

export function replicationAuditCounts(summary: ReplicationRunSummary): ReplicationAuditCounts {
  return { result: summary.result ?? 'failed', repositories: summary.repositories, tags: summary.tags, failures: summary.failures, bytes: summary.bytes };
}

/**
 * The audit line of one replication observation, or undefined when it is not worth one: every tag a
 * rule changed on its target (or left alone because someone else changed it there), and each pass
 * that changed, skipped or failed anything. Like gc_pass, a pass that found everything in step gets
 * no line: reconcile passes run every few minutes and would bury the lines that matter.
 */
export function replicationAuditEvent(observation: ReplicationObservation): Omit<AuditEvent, 'actor'> | undefined {
  switch (observation.kind) {
    case 'tag': {
      const action = REPLICATION_TAG_ACTIONS[observation.result.outcome];
      if (!action) return undefined;
      const { result } = observation;
      return { action, rule: observation.rule, repository: result.targetRepository, tag: result.tag, digest: result.digest, reason: observation.via };
    }
    case 'run': {
      const { summary } = observation;
      const changed = REPLICATION_CHANGES.some((outcome) => (summary.tags[outcome] ?? 0) > 0);
      if (!changed && summary.failures === 0 && summary.result !== 'failed') return undefined;
      return { action: 'replication_pass', rule: observation.rule, reason: summary.lastError, replication: replicationAuditCounts(summary) };
    }
    case 'failure':
    case 'lag':
      return undefined;
  }
}

/** For buildApp's `onReplication`: counted, and audited as the rule's (the actor its changes are recorded under). */
export function replicationRecorder(deps: { audit: AuditLog; metrics?: ReplicationMetrics }): (observation: ReplicationObservation) => void {
  return (observation) => {
    deps.metrics?.record(observation);
    const line = replicationAuditEvent(observation);
    if (line) deps.audit.emit({ ...line, actor: `replication:${observation.rule}`, actorKind: 'system' });
  };
}
