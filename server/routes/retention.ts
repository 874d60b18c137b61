import type { FastifyInstance } from 'fastify';
import type { AccessNeed } from '../../auth/types.js';
import { OciError } from '../errors.js';
import type { RetentionRunner } from '../registry/retention/background.js';
import { retentionPoliciesSchema, type RetentionPolicy } from '../registry/retention/policy.js';
import { preview, type PreviewEntry } from '../registry/retention/preview.js';
import { authorizeFirst } from './access.js';
import type { RouteContext } from './context.js';
import { registryAccess } from './registry-access.js';
import { queryParam } from './http.js';

/** The registry-wide resource an operator needs `*` on (like `gc`), in the rules and in tokens. */
const RETENTION_ACCESS: AccessNeed[] = [registryAccess('retention')];

/** A previewed policy body: `{ "policies": [...] }`, a list of policies, or one policy. */
export function policiesFromBody(body: unknown): RetentionPolicy[] {
  const list = Array.isArray(body) ? body : body && typeof body === 'object' && 'policies' in body ? (body as { policies: unknown }).policies : [body];
  const parsed = retentionPoliciesSchema.safeParse(list);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.length > 0 ? `${i.path.join('.')}: ` : ''}${i.message}`);
  throw new OciError('REQUEST_INVALID', `invalid retention policy: ${problems.slice(0, 10).join('; ')}`);
}

/**
 * Retention over the management API (docs/retention.md):
 *   GET  /api/v1/retention                       policies, the shared cursor and last run, this process's run
 *   GET  /api/v1/retention/preview[?repository=] what the configured policies would delete and keep, and why
 *   POST /api/v1/retention/preview[?repository=] the same for the policies in the body (before deploying them)
 *   POST /api/v1/retention/run[?dryRun=1]        starts a run in this process: 202, or 409 while one runs
 * A forced run (past the maxDeleteFraction guard) is the CLI's only: `berth retention run --force`.
 */
export async function retentionRoutes(app: FastifyInstance, ctx: RouteContext, runner: RetentionRunner): Promise<void> {
  const access = authorizeFirst(ctx, { needs: () => RETENTION_ACCESS });

  app.get('/api/v1/retention', { onRequest: access }, async (_request, reply) => {
    const state = await runner.retention.loadState();
    return reply.send({
      enabled: ctx.config.retention.enabled,
      intervalSeconds: ctx.config.retention.intervalSeconds,
      batch: ctx.config.retention.batch,
      policies: runner.options.policies,
      state,
      ...runner.status(),
    });
  });

  const answerPreview = async (policies: readonly RetentionPolicy[], repository: string | undefined): Promise<{ repositories: PreviewEntry[] }> => {
    const repositories: PreviewEntry[] = [];
    for await (const entry of preview(runner.retention, policies, repository)) repositories.push(entry);
    return { repositories };
  };

  app.get('/api/v1/retention/preview', { onRequest: access }, async (request, reply) => {
    return reply.send(await answerPreview(runner.options.policies, queryParam(request, 'repository')));
  });

  app.post('/api/v1/retention/preview', { onRequest: access }, async (request, reply) => {
    const policies = policiesFromBody(request.body);
    return reply.send(await answerPreview(policies, queryParam(request, 'repository')));
  });

  app.post('/api/v1/retention/run', { onRequest: access }, async (request, reply) => {
    const raw = queryParam(request, 'dryRun');
    const dryRun = raw === '1' || raw === 'true';
    if (!runner.trigger('request', dryRun)) {
      return reply
        .code(409)
        .send({ started: false, message: 'a retention run is already going in this process; GET /api/v1/retention shows its progress', ...runner.status() });
    }
    return reply.code(202).send({ started: true, dryRun, ...runner.status() });
  });
}
