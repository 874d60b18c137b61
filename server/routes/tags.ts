import type { FastifyInstance } from 'fastify';
import { OciError } from '../errors.js';
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
    if (!(await ctx.metadata.repositoryExists(name))) throw new OciError('NAME_UNKNOWN', `repository ${name} is not known to this registry`);
    const page = n === 0 ? [] : await ctx.metadata.listTags(name, n === undefined ? { last } : { n: n + 1, last });
    const tags = n === undefined ? page : page.slice(0, n);
    if (n !== undefined && page.length > n) setNextLink(reply, `${repoPath(name)}/tags/list`, n, tags[tags.length - 1] as string);
    return reply.type('application/json').send({ name, tags });
  });
}
