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
    const page = await ctx.repositories.tags(name, n, last);
    const tags = page.items;
    if (n !== undefined && page.more) setNextLink(reply, `${repoPath(name)}/tags/list`, n, tags[tags.length - 1] as string);
    return reply.type('application/json').send({ name, tags });
  });
}
