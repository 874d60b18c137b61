import type { FastifyInstance } from 'fastify';
import type { RouteContext } from './context.js';
import { pageParams, setNextLink } from './http.js';

/** `GET /v2/` (API version check, where clients meet the auth challenge) and `GET /v2/_catalog`. */
export async function baseRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.get('/v2/', async (request, reply) => {
    await ctx.authorizer.authorize(request, []);
    return reply.type('application/json').send({});
  });

  app.get('/v2/_catalog', async (request, reply) => {
    await ctx.authorizer.authorize(request, [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    const { n, last } = pageParams(request, ctx.config.catalog.maxEntries, ctx.config.catalog.defaultEntries);
    const limit = n ?? ctx.config.catalog.defaultEntries;
    const page = await ctx.repositories.catalog(limit, last);
    const repositories = page.items;
    if (page.more) setNextLink(reply, '/v2/_catalog', limit, repositories[repositories.length - 1] as string);
    return reply.type('application/json').send({ repositories });
  });
}
