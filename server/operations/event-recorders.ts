import type { AuditAction, AuditLog } from './audit.js';
import type { Metrics } from './metrics.js';

/** The parts of a route's RegistryEvent (server/routes/context.ts) that operators are told about. */
export interface ObservedRegistryEvent {
  action: 'push' | 'pull' | 'delete' | 'tag_moved' | 'blob_push' | 'blob_mount' | 'blob_delete';
  repository: string;
  digest?: string;
  tag?: string;
  previousDigest?: string;
  principal: { subject: string; kind: 'user' | 'robot' | 'anonymous' };
  request: { ip: string; id: string };
}

/** Builds RouteContext.emit: every event goes to the audit log; pushes and pulls also to metrics. */
export function registryEventRecorder(deps: { audit: AuditLog; metrics?: Metrics }): (event: ObservedRegistryEvent) => void {
  return (event) => {
    if (event.action === 'push') deps.metrics?.recordPush(event.repository);
    if (event.action === 'pull') deps.metrics?.recordPull(event.repository);
    deps.audit.emit({
      action: event.action satisfies AuditAction,
      actor: event.principal.subject || 'anonymous',
      actorKind: event.principal.kind,
      repository: event.repository,
      digest: event.digest,
      tag: event.tag,
      previousDigest: event.previousDigest,
      clientAddress: event.request.ip,
      requestId: event.request.id,
    });
  };
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
