import type { FastifyInstance } from 'fastify';
import type { AccessNeed } from '../../auth/types.js';
import { namespaceReport, namespacePage } from '../registry/quotas/report.js';
import { OciError } from '../errors.js';
import { authorizeFirst } from './access.js';
import type { RouteContext } from './context.js';
import { registryAccess } from './registry-access.js';
import { parseCount, queryParam } from './http.js';

/** The registry-wide resource an operator needs `*` on (like `registry:gc:*`), in the rules and in tokens. */
const QUOTA_ACCESS: AccessNeed[] = [registryAccess('quotas')];

/** Namespaces per page when the caller gives no `n`, and at most. */
const DEFAULT_PAGE = 50;
const MAX_PAGE = 500;

/**
 * Storage quotas in the management API:
 *   GET /api/v1/quotas[?n=&last=]      every namespace with a rule or usage, a page at a time: limit,
 *                                      used, reserved, exclusive and shared bytes, the rule
 *   GET /api/v1/quotas?namespace=<ns>  one namespace
 */
export async function quotaRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const access = authorizeFirst(ctx, { needs: () => QUOTA_ACCESS });
  const rules = ctx.config.quotas.rules;

  app.get('/api/v1/quotas', { onRequest: access }, async (request, reply) => {
    const now = Date.now();
    const namespace = queryParam(request, 'namespace');
    if (namespace !== undefined) {
      if (namespace === '' || namespace.includes('/')) {
        throw new OciError('NAME_INVALID', `namespace is the first segment of a repository name, without "/"; got ${JSON.stringify(namespace.slice(0, 200))}`);
      }
      return reply.send(await namespaceReport(ctx.metadata, rules, namespace, { now }));
    }
    const nText = queryParam(request, 'n');
    const n = nText === undefined ? DEFAULT_PAGE : Math.min(parseCount(nText, 'n'), MAX_PAGE);
    const page = await namespacePage(ctx.metadata, rules, { n, last: queryParam(request, 'last') });
    const namespaces = [];
    for (const ns of page.namespaces) namespaces.push(await namespaceReport(ctx.metadata, rules, ns, { now }));
    return reply.send({ namespaces, ...(page.next === undefined ? {} : { next: page.next }) });
  });
}
