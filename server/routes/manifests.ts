import type { FastifyInstance, FastifyRequest } from 'fastify';
import { OciError } from '../errors.js';
import { assertName, parseReference, type Reference } from '../registry/references.js';
import type { RouteContext } from './context.js';
import { readOnlyError } from './blobs.js';
import { header, notModified, queryParams, repoPath } from './http.js';
import { REPO_PREFIX } from './url-rewrite.js';

type ManifestRequest = FastifyRequest<{ Params: { name: string; reference: string } }>;

/** At most this many `?tag=` values in one manifest PUT (the spec asks for at least 10). */
const MAX_TAGS_PER_PUT = 100;

export async function manifestRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: ctx.config.manifests.maxBytes }, (_request, body, done) => done(null, body));

  const path = `${REPO_PREFIX}:name/manifests/:reference`;

  function parse(request: ManifestRequest): { name: string; reference: Reference } {
    return { name: assertName(request.params.name), reference: parseReference(request.params.reference) };
  }

  async function fetch(request: ManifestRequest, pull: boolean) {
    const { name, reference } = parse(request);
    const principal = await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull'] }]);
    const record = await ctx.manifests.resolve(name, reference);
    if (pull) ctx.emit({ action: 'pull', repository: name, digest: record.digest, principal, request, ...(reference.kind === 'tag' ? { tag: reference.tag } : {}) });
    return record;
  }


  app.head<{ Params: { name: string; reference: string } }>(path, async (request, reply) => {
    const record = await fetch(request, false);
    reply.header('Docker-Content-Digest', record.digest).header('ETag', `"${record.digest}"`);
    if (notModified(request, record.digest)) return reply.code(304).send();
    return reply.code(200).type(record.mediaType).header('Content-Length', record.size).send();
  });

  app.get<{ Params: { name: string; reference: string } }>(path, { exposeHeadRoute: false }, async (request, reply) => {
    const record = await fetch(request, true);
    reply.header('Docker-Content-Digest', record.digest).header('ETag', `"${record.digest}"`);
    if (notModified(request, record.digest)) return reply.code(304).send();
    const bytes = await ctx.manifests.read(record);
    return reply.code(200).type(record.mediaType).send(bytes);
  });

  app.put<{ Params: { name: string; reference: string } }>(path, async (request, reply) => {
    const { name, reference } = parse(request);
    const principal = await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull', 'push'] }]);
    if (ctx.config.readOnly) throw readOnlyError();
    const body = request.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw new OciError('MANIFEST_INVALID', 'manifest PUT needs the manifest JSON as its body');
    const extraTags = queryParams(request, 'tag');
    if (extraTags.length > MAX_TAGS_PER_PUT) throw new OciError('TAG_INVALID', `at most ${MAX_TAGS_PER_PUT} tags per manifest PUT`);
    if (extraTags.length > 0 && reference.kind === 'tag') throw new OciError('TAG_INVALID', '?tag= is only allowed when the manifest is pushed by digest');
    const result = await ctx.manifests.put(name, reference, extraTags, body, header(request, 'content-type'));

    ctx.emit({ action: 'push', repository: name, digest: result.digest, principal, request, ...(reference.kind === 'tag' ? { tag: reference.tag } : {}) });
    for (const tag of result.tags) {
      const previous = result.previousTags[tag];
      if (previous !== undefined && previous !== result.digest) ctx.emit({ action: 'tag_moved', repository: name, tag, digest: result.digest, previousDigest: previous, principal, request });
    }
    reply.code(201).header('Location', `${repoPath(name)}/manifests/${result.digest}`).header('Docker-Content-Digest', result.digest).header('Content-Length', 0);
    if (result.subject) reply.header('OCI-Subject', result.subject);
    if (extraTags.length > 0) reply.header('OCI-Tag', result.tags);
    return reply.send();
  });

  // References hold no '/': a longer path is an invalid tag or digest, not an unknown endpoint.
  app.route<{ Params: { name: string; reference: string; '*': string } }>({
    method: ['GET', 'PUT', 'DELETE'],
    url: `${path}/*`,
    handler: async (request) => {
      assertName(request.params.name);
      parseReference(`${request.params.reference}/${request.params['*']}`);
      throw new OciError('MANIFEST_UNKNOWN');
    },
  });

  app.delete<{ Params: { name: string; reference: string } }>(path, async (request, reply) => {
    const { name, reference } = parse(request);
    const principal = await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions: ['delete'] }]);
    if (!ctx.config.delete.enabled) throw new OciError('UNSUPPORTED', 'deletes are disabled on this registry (delete.enabled: false)');
    if (ctx.config.readOnly) throw readOnlyError();
    if (reference.kind === 'digest') {
      await ctx.manifests.deleteByDigest(name, reference.digest);
      ctx.emit({ action: 'delete', repository: name, digest: reference.digest.value, principal, request });
    } else {
      await ctx.manifests.deleteTag(name, reference.tag);
      ctx.emit({ action: 'delete', repository: name, tag: reference.tag, principal, request });
    }
    return reply.code(202).header('Content-Length', 0).send();
  });
}
