import type { FastifyInstance, FastifyRequest } from 'fastify';
import { configuredEndpoints } from '../registry/events/operator-checks.js';
import { eventsStatus } from '../registry/events/operator.js';
import type { GcRunner } from '../registry/gc/background.js';
import { quotaOverview } from '../registry/quotas/overview.js';
import type { ReplicationRuntime } from '../registry/replication/setup.js';
import type { RetentionRunner } from '../registry/retention/background.js';
import type { RouteContext } from './context.js';
import { enabledFeatures } from './features.js';
import { gcStatus } from './gc.js';
import { REGISTRY_RESOURCES, registryAccess, type RegistryResource } from './registry-access.js';

export interface StatusSources {
  gc: GcRunner;
  retention: RetentionRunner;
  replication: ReplicationRuntime;
  now: () => number;
}

/** A section the caller may not see, or of a feature that is off; otherwise `enabled: true` and its fields. */
type Section<T> = { access: false } | { enabled: false } | ({ enabled: true } & T);

const iso = (ms: number): string => new Date(ms).toISOString();

/** The stored states keep ms; the dashboard gives every time as ISO 8601, as the runners' status does. */
function withIsoTimes<T extends { startedAt: number; finishedAt?: number; progressAt?: number }>(
  run: T,
): Omit<T, 'startedAt' | 'finishedAt' | 'progressAt'> & { startedAt: string; finishedAt?: string; progressAt?: string } {
  const { startedAt, finishedAt, progressAt, ...rest } = run;
  return {
    ...rest,
    startedAt: iso(startedAt),
    ...(finishedAt === undefined ? {} : { finishedAt: iso(finishedAt) }),
    ...(progressAt === undefined ? {} : { progressAt: iso(progressAt) }),
  };
}

/** Namespaces listed in the quotas section. */
const TOP_NAMESPACES = 10;

/**
 * GET /api/v1/status: the web UI's dashboard in one request. Any valid credentials will do (as for
 * `GET /v2/`); each section is filled only for a caller allowed `*` on the registry resource its own
 * route needs, from the same status functions that route answers with. Every section is bounded: GC and
 * retention read counters and one state record, quotas at most 1000 namespaces' usage records, events
 * a few records per endpoint, replication each enabled rule's status (docs/management-api.md).
 */
export async function statusRoutes(app: FastifyInstance, ctx: RouteContext, sources: StatusSources): Promise<void> {
  const features = enabledFeatures(ctx.config);
  const endpoints = configuredEndpoints(ctx.config);
  const { service, rules } = sources.replication;

  const builders = {
    gc: async () => gcStatus(ctx, sources.gc, sources.now()),
    retention: async () => {
      const state = await sources.retention.retention.loadState();
      return {
        policies: sources.retention.options.policies.length,
        ...(state.lastRun ? { lastRun: { ...state.lastRun, startedAt: iso(state.lastRun.startedAt) } } : {}),
        ...(state.lastCycleCompletedAt === undefined ? {} : { lastCycleCompletedAt: new Date(state.lastCycleCompletedAt).toISOString() }),
        ...sources.retention.status(),
      };
    },
    quotas: async () => quotaOverview(ctx.metadata, ctx.config.quotas.rules, { now: sources.now(), top: TOP_NAMESPACES }),
    events: async () => eventsStatus(ctx.metadata.events, endpoints, sources.now()),
    replication: async () => {
      const lines = [];
      // One rule after another: each status reads that rule's records, and the dashboard is not urgent.
      for (const rule of rules) {
        const line = { name: rule.name, direction: rule.direction, registry: rule.registry, enabled: rule.config.enabled };
        const status = rule.config.enabled ? await service.status(rule.name) : undefined;
        if (!status) {
          lines.push(line);
          continue;
        }
        lines.push({
          ...line,
          // In this process; `pass` is the one the shared state says runs (in any process).
          running: service.isRunning(rule.name),
          ...(status.state.running ? { pass: withIsoTimes(status.state.running) } : {}),
          ...(status.state.lastRun ? { lastPass: withIsoTimes(status.state.lastRun) } : {}),
          lagSeconds: status.lagSeconds,
          failures: status.artifacts.failed ?? 0,
          conflicts: status.artifacts.conflict ?? 0,
          artifacts: status.artifacts,
        });
      }
      return { rules: lines };
    },
  };

  const section = async <T extends object>(allowed: boolean, enabled: boolean, build: () => Promise<T>): Promise<Section<T>> => {
    if (!allowed) return { access: false };
    if (!enabled) return { enabled: false };
    return { enabled: true, ...(await build()) };
  };

  const pagesOf = async (request: FastifyRequest): Promise<RegistryResource[]> => {
    const allowed = await Promise.all(REGISTRY_RESOURCES.map((resource) => ctx.authorizer.allows(request, registryAccess(resource))));
    return REGISTRY_RESOURCES.filter((_, i) => allowed[i]);
  };

  app.get('/api/v1/status', async (request, reply) => {
    const principal = await ctx.authorizer.authorize(request, []);
    const pages = new Set(await pagesOf(request));
    const [gc, retention, quotas, events, replication] = await Promise.all([
      section(pages.has('gc'), features.gc, builders.gc),
      section(pages.has('retention'), features.retention, builders.retention),
      section(pages.has('quotas'), features.quotas, builders.quotas),
      section(pages.has('events'), features.events, builders.events),
      section(pages.has('replication'), features.replication, builders.replication),
    ]);
    return reply.send({
      caller: { subject: principal.subject, kind: principal.kind, pages: [...pages] },
      gc,
      retention,
      quotas,
      events,
      replication,
    });
  });
}
