import type { FastifyInstance } from 'fastify';
import type { AccessNeed } from '../../auth/types.js';
import { OciError } from '../errors.js';
import type { ReplicationRuntime } from '../registry/replication/setup.js';
import { ARTIFACT_STATES, artifactPage } from '../registry/replication/status.js';
import type { ArtifactState } from '../registry/replication/sync.js';
import { authorizeFirst } from './access.js';
import type { RouteContext } from './context.js';
import { registryAccess } from './registry-access.js';
import { pageParams, queryParam } from './http.js';

/** The registry-wide resource an operator needs `*` on (like `retention`), in the rules and in tokens. */
const REPLICATION_ACCESS: AccessNeed[] = [registryAccess('replication')];

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

/**
 * Replication over the management API (docs/replication.md):
 *   GET  /api/v1/replication                    every configured rule; the enabled ones with their status
 *   GET  /api/v1/replication/rules/:rule        one rule's status and its artifacts, paged (?state=, ?n=, ?last=)
 *   POST /api/v1/replication/rules/:rule/run    starts a reconcile pass in this process: 202, or 409 while one runs
 * Status is read from the shared records, so every process answers the same.
 */
export async function replicationRoutes(app: FastifyInstance, ctx: RouteContext, replication: ReplicationRuntime, now: () => number): Promise<void> {
  const access = authorizeFirst(ctx, { needs: () => REPLICATION_ACCESS });
  const { service } = replication;

  const enabledRule = (name: string) => {
    const rule = replication.rules.find((r) => r.name === name);
    if (!rule) throw new OciError('NOT_FOUND', `no replication rule ${JSON.stringify(name.slice(0, 200))} is configured`, { rule: name.slice(0, 200) });
    if (!rule.config.enabled) throw new OciError('NOT_FOUND', `replication rule ${JSON.stringify(name)} is disabled (enabled: false)`, { rule: name });
    return rule;
  };

  app.get('/api/v1/replication', { onRequest: access }, async (_request, reply) => {
    const rules = [];
    for (const rule of replication.rules) {
      const status = rule.config.enabled ? await service.status(rule.name) : undefined;
      rules.push({
        name: rule.name,
        direction: rule.direction,
        registry: rule.registry,
        enabled: rule.config.enabled,
        onPush: rule.onPush,
        reconcileSeconds: rule.config.reconcileSeconds,
        ...(status ? { status, running: service.isRunning(rule.name) } : {}),
      });
    }
    return reply.send({ rules });
  });

  app.get<{ Params: { rule: string } }>('/api/v1/replication/rules/:rule', { onRequest: access }, async (request, reply) => {
    const rule = enabledRule(request.params.rule);
    const stateRaw = queryParam(request, 'state');
    if (stateRaw !== undefined && !ARTIFACT_STATES.includes(stateRaw as ArtifactState)) {
      throw new OciError('REQUEST_INVALID', `state must be one of ${ARTIFACT_STATES.join(', ')}, got ${JSON.stringify(stateRaw.slice(0, 40))}`);
    }
    const state = stateRaw as ArtifactState | undefined;
    const { n, last } = pageParams(request, MAX_PAGE, DEFAULT_PAGE);
    const status = await service.status(rule.name);
    const page = await artifactPage(ctx.metadata.replication, rule.name, { state, n: n ?? DEFAULT_PAGE, last }, now);
    if (page.more && page.last !== undefined) {
      const filter = state ? `&state=${state}` : '';
      reply.header(
        'Link',
        `</api/v1/replication/rules/${encodeURIComponent(rule.name)}?n=${n ?? DEFAULT_PAGE}&last=${encodeURIComponent(page.last)}${filter}>; rel="next"`,
      );
    }
    // The status's counts by state move to `counts`: `artifacts` is the page.
    return reply.send({ ...status, counts: status?.artifacts, running: service.isRunning(rule.name), artifacts: page.artifacts });
  });

  app.post<{ Params: { rule: string } }>('/api/v1/replication/rules/:rule/run', { onRequest: access }, async (request, reply) => {
    const rule = enabledRule(request.params.rule);
    if (service.isRunning(rule.name)) {
      return reply.code(409).send({
        started: false,
        message: `a pass of ${rule.name} is already going in this process; GET /api/v1/replication/rules/${rule.name} shows its progress`,
      });
    }
    // Not awaited: a pass may take hours; its outcome goes to the rule's state, the log, metrics and audit.
    void service.runNow(rule.name);
    return reply.code(202).send({ started: true });
  });
}
