import type { FastifyInstance } from 'fastify';
import { assertName, parseDigest } from '../registry/references.js';
import { MEDIA_TYPES } from '../registry/manifest-parse.js';
import type { RouteContext } from './context.js';
import { queryParam } from './http.js';
import { REPO_PREFIX } from './url-rewrite.js';

export async function referrerRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.get<{ Params: { name: string; digest: string } }>(`${REPO_PREFIX}:name/referrers/:digest`, async (request, reply) => {
    const name = assertName(request.params.name);
    const subject = parseDigest(request.params.digest);
    await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull'] }]);
    const artifactType = queryParam(request, 'artifactType');
    const cached = () => ctx.manifests.referrers(name, subject, artifactType || undefined);
    const target = ctx.proxy?.namespaces.resolve(name);
    const { manifests, stale } =
      target && ctx.proxy
        ? await ctx.proxy.lists.referrers(target, subject, artifactType || undefined, cached)
        : { manifests: await cached(), stale: undefined };
    if (stale !== undefined) reply.header('Warning', stale);
    if (artifactType) reply.header('OCI-Filters-Applied', 'artifactType');
    // A Buffer, so Fastify adds no charset parameter: the spec wants the bare index media type.
    return reply.type(MEDIA_TYPES.ociIndex).send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests })));
  });
}
