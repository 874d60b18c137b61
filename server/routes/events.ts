import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccessNeed } from '../../auth/types.js';
import { OciError } from '../errors.js';
import { UnknownEndpointError, eventsStatus } from '../registry/events/operator.js';
import { ReplaySkipsError, UnknownDeadLetterError, auditReason, deadLettersPage, discard, recordsPage, replay } from '../registry/events/operator-answers.js';
import { configuredEndpoints, EVENTS_DISABLED } from '../registry/events/operator-checks.js';
import { parseReplayTime, ReplayTimeError } from '../registry/events/replay-time.js';
import { assertName } from '../registry/references.js';
import { authorizeFirst, principalOf } from './access.js';
import type { RouteContext } from './context.js';
import { registryAccess } from './registry-access.js';
import { pageParams, queryParam } from './http.js';

/** The registry-wide resource an operator needs `*` on (like `registry:gc:*`), in the rules and in tokens. */
const EVENTS_ACCESS: AccessNeed[] = [registryAccess('events')];

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;

interface EndpointParams {
  Params: { name: string };
}

/** `{"since": "<ISO time>"}` or `{"deadLetters": true}`, nothing else. */
function replayRequest(body: unknown, now: number): { since: number } | { deadLetters: true } {
  const usage = 'the body is {"since": "<ISO-8601 time>"} or {"deadLetters": true}';
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new OciError('REQUEST_INVALID', `${usage} (Content-Type: application/json)`);
  const fields = body as Record<string, unknown>;
  const extra = Object.keys(fields).filter((k) => k !== 'since' && k !== 'deadLetters');
  if (extra.length > 0) throw new OciError('REQUEST_INVALID', `unknown field ${JSON.stringify(extra[0])}: ${usage}`);
  const hasSince = fields.since !== undefined;
  const hasDead = fields.deadLetters !== undefined;
  if (hasSince === hasDead) throw new OciError('REQUEST_INVALID', `${hasSince ? 'give since or deadLetters, not both' : 'say what to replay'}: ${usage}`);
  if (hasDead) {
    if (fields.deadLetters !== true) throw new OciError('REQUEST_INVALID', `deadLetters must be true: ${usage}`);
    return { deadLetters: true };
  }
  if (typeof fields.since !== 'string') throw new OciError('REQUEST_INVALID', `since must be a string: ${usage}`);
  try {
    return { since: parseReplayTime(fields.since, now, { relative: false }) };
  } catch (err) {
    if (err instanceof ReplayTimeError) throw new OciError('REQUEST_INVALID', `since: ${err.message}`);
    throw err;
  }
}

/** The operator's errors as the API's: an endpoint or dead letter not there is a 404, a replay that would skip records a 400. */
async function answering<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof UnknownEndpointError) throw new OciError('NOT_FOUND', err.message, { endpoint: err.endpoint });
    if (err instanceof UnknownDeadLetterError) throw new OciError('NOT_FOUND', err.message);
    if (err instanceof ReplaySkipsError) throw new OciError('REQUEST_INVALID', err.message);
    throw err;
  }
}

/**
 * The event log and its endpoints in the management API (docs/events.md, "Operating events"):
 *   GET    /api/v1/events[?n=&last=&repository=]                 recent records, newest first
 *   GET    /api/v1/events/status                                 the log and every endpoint's progress
 *   GET    /api/v1/events/endpoints/:name/dead-letters[?n=&last=]
 *   POST   /api/v1/events/endpoints/:name/replay                 {"since": "<ISO time>"} | {"deadLetters": true}
 *   DELETE /api/v1/events/endpoints/:name/dead-letters[/:id]     discard one, or all
 * With events.enabled false every route answers 404 saying so (after access is decided).
 */
export async function eventRoutes(app: FastifyInstance, ctx: RouteContext, now: () => number): Promise<void> {
  const access = authorizeFirst(ctx, {
    needs: () => EVENTS_ACCESS,
    then: () => {
      if (!ctx.config.events.enabled) throw new OciError('NOT_FOUND', EVENTS_DISABLED);
    },
  });
  const events = ctx.metadata.events;
  const configured = configuredEndpoints(ctx.config);
  const page = (request: FastifyRequest) => {
    const { n, last } = pageParams(request, MAX_PAGE, DEFAULT_PAGE);
    return { n: n ?? DEFAULT_PAGE, last };
  };

  app.get('/api/v1/events', { onRequest: access }, async (request, reply) => {
    const repository = queryParam(request, 'repository', 'NAME_INVALID');
    if (repository !== undefined) assertName(repository);
    return reply.send(await recordsPage(events, { ...page(request), repository }));
  });

  app.get('/api/v1/events/status', { onRequest: access }, async (_request, reply) => {
    return reply.send(await eventsStatus(events, configured, now()));
  });

  app.get<EndpointParams>('/api/v1/events/endpoints/:name/dead-letters', { onRequest: access }, async (request, reply) => {
    return reply.send(await answering(() => deadLettersPage(events, request.params.name, configured, page(request))));
  });

  app.post<EndpointParams>('/api/v1/events/endpoints/:name/replay', { onRequest: access }, async (request, reply) => {
    const at = now();
    const what = replayRequest(request.body, at);
    const answer = await answering(() => replay(events, request.params.name, configured, what, at));
    ctx.operatorAction({ action: 'events_replayed', endpoint: answer.endpoint, reason: auditReason(answer), principal: principalOf(request), request });
    return reply.send(answer);
  });

  app.delete<EndpointParams>('/api/v1/events/endpoints/:name/dead-letters', { onRequest: access }, async (request, reply) => {
    const answer = await answering(() => discard(events, request.params.name, configured, undefined));
    ctx.operatorAction({
      action: 'events_discarded',
      endpoint: answer.endpoint,
      reason: auditReason({ ...answer, id: undefined }),
      principal: principalOf(request),
      request,
    });
    return reply.send(answer);
  });

  app.delete<{ Params: { name: string; id: string } }>('/api/v1/events/endpoints/:name/dead-letters/:id', { onRequest: access }, async (request, reply) => {
    const answer = await answering(() => discard(events, request.params.name, configured, request.params.id));
    ctx.operatorAction({
      action: 'events_discarded',
      endpoint: answer.endpoint,
      reason: auditReason({ ...answer, id: request.params.id }),
      principal: principalOf(request),
      request,
    });
    return reply.send(answer);
  });
}
