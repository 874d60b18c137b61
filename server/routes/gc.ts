import type { FastifyInstance } from 'fastify';
import type { AccessNeed } from '../../auth/types.js';
import type { GcRunner } from '../registry/gc/background.js';
import { authorizeFirst } from './access.js';
import type { RouteContext } from './context.js';
import { registryAccess } from './registry-access.js';
import { queryParam } from './http.js';

/** The registry-wide resource an operator needs `*` on (like `catalog`), in the rules and in tokens. */
const GC_ACCESS: AccessNeed[] = [registryAccess('gc')];

/** What GET /api/v1/gc answers, and the gc section of GET /api/v1/status. */
export async function gcStatus(ctx: RouteContext, runner: GcRunner, now: number) {
  const [queue, complete] = await Promise.all([ctx.metadata.gc.queueSize(now), ctx.metadata.gc.completeness()]);
  return {
    enabled: ctx.config.gc.enabled,
    complete: complete !== undefined,
    ...(complete === undefined
      ? { refusal: 'the metadata store is not known to be complete: run `berth metadata rebuild` (docs/gc.md)' }
      : { completeSince: complete }),
    queue,
    ...runner.status(),
  };
}

/**
 * The garbage collector's part of the management API:
 *   GET  /api/v1/gc              the queue, the completeness marker, the pass running in this process
 *                                (with its counts so far) and the last one
 *   POST /api/v1/gc[?dryRun=1]   starts a pass in this process now: 202, or 409 while one runs
 */
export async function gcRoutes(app: FastifyInstance, ctx: RouteContext, runner: GcRunner): Promise<void> {
  const access = authorizeFirst(ctx, { needs: () => GC_ACCESS });

  app.get('/api/v1/gc', { onRequest: access }, async (_request, reply) => reply.send(await gcStatus(ctx, runner, Date.now())));

  app.post('/api/v1/gc', { onRequest: access }, async (request, reply) => {
    const raw = queryParam(request, 'dryRun');
    const dryRun = raw === '1' || raw === 'true';
    if (!runner.trigger('request', dryRun)) {
      return reply
        .code(409)
        .send({ started: false, message: 'a pass is already running in this process; GET /api/v1/gc shows its progress', ...runner.status() });
    }
    return reply.code(202).send({ started: true, dryRun, ...runner.status() });
  });
}
