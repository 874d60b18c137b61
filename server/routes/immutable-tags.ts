import type { FastifyInstance } from 'fastify';
import { tokenImmutabilityFor } from '../../auth/tag-patterns.js';
import type { AccessNeed } from '../../auth/types.js';
import { OciError } from '../errors.js';
import { assertName, assertTag } from '../registry/references.js';
import type { RouteContext } from './context.js';
import { registryAccess } from './registry-access.js';
import { queryParam } from './http.js';

/** The registry-wide resource an operator needs `*` on to ask about any repository. */
const ADMIN_ACCESS: AccessNeed = registryAccess('immutable');

/**
 * GET /api/v1/immutable-tags?repository=<name>[&tag=<tag>]: the immutable-tag rules that apply to a
 * repository (configured ones, and the patterns the caller's own token carries), and with `tag`
 * whether that tag is immutable and by which rule. Anyone who may pull the repository may ask, as may
 * a holder of `registry:immutable:*`.
 */
export async function immutableTagRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const rules = ctx.manifests.immutableTags;

  app.get('/api/v1/immutable-tags', async (request, reply) => {
    const rawRepository = queryParam(request, 'repository');
    if (rawRepository === undefined) throw new OciError('REQUEST_INVALID', 'give the repository: /api/v1/immutable-tags?repository=<name>[&tag=<tag>]');
    const repository = assertName(rawRepository);
    const rawTag = queryParam(request, 'tag');
    const tag = rawTag === undefined ? undefined : assertTag(rawTag);

    const admin = await ctx.authorizer.allows(request, ADMIN_ACCESS);
    const principal = await ctx.authorizer.authorize(request, [admin ? ADMIN_ACCESS : { type: 'repository', name: repository, actions: ['pull'] }]);
    const token = tokenImmutabilityFor(principal, repository);

    const body: Record<string, unknown> = {
      repository,
      rules: [
        ...rules.forRepository(repository).map((r) => ({ source: 'config', ...r })),
        ...(token
          ? [
              {
                source: 'token',
                rule: 'token claim tag_immutable_patterns',
                patterns: token.patterns.map((p) => p.source),
                ...(token.unusable.length > 0 ? { unusable: token.unusable } : {}),
              },
            ]
          : []),
      ],
    };
    if (tag !== undefined) {
      const match = rules.match(repository, tag, token);
      const digest = await ctx.metadata.resolveTag(repository, tag);
      body.tag = { tag, immutable: match !== undefined, ...(match ? { rule: match.rule } : {}), ...(digest !== undefined ? { digest } : {}) };
    }
    return reply.send(body);
  });
}
