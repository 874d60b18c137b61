import type { FastifyInstance } from 'fastify';
import { assertName } from '../registry/references.js';
import type { RouteContext } from './context.js';
import { pageParams, repoPath, setNextLink } from './http.js';
import { REPO_PREFIX } from './url-rewrite.js';

const MAX_TAGS_PAGE = 10_000;

export async function tagRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.get<{ Params: { name: string } }>(`${REPO_PREFIX}:name/tags/list`, async (request, reply) => {
    const name = assertName(request.params.name);
    await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull'] }]);
    const { n, last } = pageParams(request, MAX_TAGS_PAGE, undefined);
    const path = `${repoPath(name)}/tags/list`;
    const cached = () => ctx.repositories.tags(name, n, last);
    const target = ctx.proxy?.namespaces.resolve(name);
    const listing = target && ctx.proxy ? await ctx.proxy.lists.tags(target, n, last, cached) : { from: 'cache' as const, page: await cached() };
    if (listing.from === 'upstream') {
      // The upstream's next page, under the local name.
      if (listing.next !== undefined) reply.header('Link', `<${path}${listing.next}>; rel="next"`);
      return reply.type('application/json').send({ name, tags: listing.tags });
    }
    if ('stale' in listing && listing.stale !== undefined) reply.header('Warning', listing.stale);
    const tags = listing.page.items;
    if (n !== undefined && listing.page.more) setNextLink(reply, path, n, tags[tags.length - 1] as string);
    return reply.type('application/json').send({ name, tags });
  });
}
