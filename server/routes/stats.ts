import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccessNeed, Principal } from '../../auth/types.js';
import { OciError } from '../errors.js';
import { assertName, assertTag } from '../registry/references.js';
import { repositoryPullReport, tagPullReport } from '../registry/stats/pull-report.js';
import type { RouteContext } from './context.js';
import { registryAccess } from './registry-access.js';
import { pageParams, queryParam } from './http.js';

/** The registry-wide resource an operator needs `*` on to read every repository's statistics. */
const STATS_ACCESS: AccessNeed = registryAccess('stats');

const DEFAULT_DAYS = 30;
const DEFAULT_TAGS_PAGE = 100;
const MAX_TAGS_PAGE = 1000;

function daysParam(request: FastifyRequest, max: number): number {
  const raw = queryParam(request, 'days', 'PAGINATION_NUMBER_INVALID');
  if (raw === undefined) return Math.min(DEFAULT_DAYS, max);
  const days = /^\d{1,6}$/.test(raw) ? Number(raw) : NaN;
  if (!(days >= 1 && days <= max)) {
    throw new OciError(
      'PAGINATION_NUMBER_INVALID',
      `days must be a whole number from 1 to ${max} (stats.pullDays: daily counts are kept that long), got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  }
  return days;
}

/**
 * Pull statistics in the management API (docs/pull-statistics.md):
 *   GET /api/v1/pulls?repository=<name>[&days=N][&n=N][&last=<tag>]   totals, daily series, tags paged
 *   GET /api/v1/pulls?repository=<name>&tag=<tag>[&days=N]            one tag's totals and series
 * Readable with `*` on the registry resource `stats`, or with pull on the repository itself.
 */
export async function statsRoutes(app: FastifyInstance, ctx: RouteContext, now: () => number): Promise<void> {
  async function authorize(request: FastifyRequest, repo: string): Promise<Principal> {
    // An operator's token may carry the stats scope; anyone else needs what a pull of the repository needs.
    if (await ctx.authorizer.allows(request, STATS_ACCESS)) {
      try {
        return await ctx.authorizer.authorize(request, [STATS_ACCESS]);
      } catch (err) {
        if (!(err instanceof OciError)) throw err;
      }
    }
    return ctx.authorizer.authorize(request, [{ type: 'repository', name: repo, actions: ['pull'] }]);
  }

  app.get('/api/v1/pulls', async (request, reply) => {
    const repository = queryParam(request, 'repository', 'NAME_INVALID');
    if (repository === undefined || repository === '') throw new OciError('NAME_INVALID', 'name the repository: /api/v1/pulls?repository=<name>');
    const repo = assertName(repository);
    const tagRaw = queryParam(request, 'tag', 'TAG_INVALID');
    const tag = tagRaw === undefined ? undefined : assertTag(tagRaw);
    const days = daysParam(request, ctx.config.stats.pullDays);
    const { n, last } = pageParams(request, MAX_TAGS_PAGE, DEFAULT_TAGS_PAGE);
    if (tag !== undefined && (queryParam(request, 'n') !== undefined || last !== undefined)) {
      throw new OciError('PAGINATION_NUMBER_INVALID', 'n and last page the tags of a repository; leave them out when asking for one tag');
    }
    if (last !== undefined) assertTag(last);
    await authorize(request, repo);

    const at = now();
    if (tag !== undefined) return reply.send(await tagPullReport(ctx.metadata, repo, tag, { days, now: at }));
    const report = await repositoryPullReport(ctx.metadata, repo, { days, now: at, n, last });
    if (report.nextLast !== undefined) {
      const query = new URLSearchParams({ repository: repo, days: String(days), n: String(n ?? DEFAULT_TAGS_PAGE), last: report.nextLast });
      reply.header('Link', `</api/v1/pulls?${query.toString()}>; rel="next"`);
    }
    return reply.send(report);
  });
}
