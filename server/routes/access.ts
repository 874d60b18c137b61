import type { FastifyRequest, RouteGenericInterface } from 'fastify';
import type { AccessNeed, Principal } from '../../auth/types.js';
import type { EventOrigin } from '../../storage-drivers/metadata/event-types.js';
import { OciError } from '../errors.js';
import type { RouteContext } from './context.js';

/*
 * Access is decided before a byte of the body is read. A route that carries a body gets an onRequest
 * hook from `authorizeFirst`: it runs before Fastify's content-type parser (and before Berth sends
 * `100 Continue`, see app.ts), so an anonymous 4 MiB manifest PUT costs the headers only. The
 * handler then takes the principal with `principalOf`.
 */

const principals = new WeakMap<FastifyRequest, Principal>();

export interface AccessCheck<R extends RouteGenericInterface> {
  /** Validates the URL (400s come before 401s, as for every other route) and names what is needed. */
  needs(request: FastifyRequest<R>): AccessNeed[];
  /** Checks that only need the headers and the principal: read-only mode, a declared length too large. */
  then?(request: FastifyRequest<R>, principal: Principal): void;
}

export function authorizeFirst<R extends RouteGenericInterface>(ctx: RouteContext, check: AccessCheck<R>): (request: FastifyRequest<R>) => Promise<void> {
  return async (request) => {
    const needs = check.needs(request);
    const principal = await ctx.authorizer.authorize(request as FastifyRequest, needs);
    principals.set(request as FastifyRequest, principal);
    check.then?.(request, principal);
  };
}

/** The principal `authorizeFirst` admitted; a route without the hook is a programming error. */
export function principalOf(request: FastifyRequest): Principal {
  const principal = principals.get(request);
  if (!principal) throw new OciError('UNKNOWN', 'internal error: route has no access check');
  return principal;
}

/** The request's part of an event's origin: who, from where, which request. */
export function requestOrigin(request: FastifyRequest, principal: Principal): EventOrigin {
  const userAgent = request.headers['user-agent'];
  return {
    actor: principal.subject || 'anonymous',
    actorKind: principal.kind,
    address: request.ip,
    requestId: request.id,
    ...(typeof userAgent === 'string' ? { userAgent: userAgent.slice(0, 256) } : {}),
  };
}

/*
 * The gates that depend on the registry's mode, not on who asks. Checked after access is granted,
 * so an anonymous client is challenged first.
 */

export function readOnlyError(): OciError {
  return new OciError('UNSUPPORTED', 'this registry is in read-only mode (maintenance); pulls work, pushes and deletes are refused');
}

/** Pushes are refused in read-only mode. */
export function assertWritable(ctx: RouteContext): void {
  if (ctx.config.readOnly) throw readOnlyError();
}

/** Deletes need `delete.enabled` and a registry that is not read-only. */
export function assertDeletable(ctx: RouteContext): void {
  if (!ctx.config.delete.enabled) throw new OciError('UNSUPPORTED', 'deletes are disabled on this registry (delete.enabled: false)');
  assertWritable(ctx);
}
