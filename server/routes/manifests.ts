import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { tokenImmutabilityFor } from '../../auth/tag-patterns.js';
import type { Principal } from '../../auth/types.js';
import { OciError } from '../errors.js';
import { ImmutableTagRefusal } from '../registry/immutable/refusal.js';
import { assertName, parseReference, type Reference } from '../registry/references.js';
import { assertDeletable, assertWritable, authorizeFirst, principalOf, requestOrigin } from './access.js';
import { readBody, refuseDeclaredLength } from './body.js';
import type { RouteContext } from './context.js';
import { refuseDeeperPaths } from './deeper-paths.js';
import { header, notModified, queryParams, repoPath } from './http.js';
import { REPO_PREFIX } from './url-rewrite.js';

type ManifestRequest = FastifyRequest<{ Params: { name: string; reference: string } }>;

/** At most this many `?tag=` values in one manifest PUT (the spec asks for at least 10). */
const MAX_TAGS_PER_PUT = 100;

function readsManifest(request: FastifyRequest): boolean {
  return request.method === 'GET' || request.method === 'HEAD';
}

/**
 * A GET or HEAD by a reference that is not a valid tag names a manifest that cannot exist: 404
 * MANIFEST_UNKNOWN, as the OCI conformance suite expects. A PUT or DELETE of one is still a 400, and
 * a malformed digest stays DIGEST_INVALID, which tells the client more than "unknown".
 */
function referenceToRead(reference: string): Reference {
  try {
    return parseReference(reference);
  } catch (err) {
    if (err instanceof OciError && err.code === 'TAG_INVALID') throw new OciError('MANIFEST_UNKNOWN', `${err.message}; no manifest can have this reference`);
    throw err;
  }
}

export async function manifestRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  /** Runs a change; an immutable-tag refusal is audited and counted on its way to the client. */
  async function guarded<T>(request: FastifyRequest, principal: Principal, change: () => Promise<T>): Promise<T> {
    try {
      return await change();
    } catch (err) {
      if (err instanceof ImmutableTagRefusal) {
        const { operation, repository, tag, digest, rule } = err.refusal;
        ctx.emit({ action: 'immutable_refused', repository, tag, digest, operation, rule, principal, request });
      }
      throw err;
    }
  }

  // Bodies are read by the PUT handler, after authorizeFirst has admitted the request.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  const path = `${REPO_PREFIX}:name/manifests/:reference`;

  function parse(request: ManifestRequest): { name: string; reference: Reference } {
    const name = assertName(request.params.name);
    return { name, reference: readsManifest(request) ? referenceToRead(request.params.reference) : parseReference(request.params.reference) };
  }

  async function fetch(request: ManifestRequest, reply: FastifyReply, pull: boolean) {
    const { name, reference } = parse(request);
    const principal = await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull'] }]);
    const target = ctx.proxy?.namespaces.resolve(name);
    const { record, stale } =
      target && ctx.proxy ? await ctx.proxy.manifests.resolve(name, target, reference) : { record: await ctx.manifests.resolve(name, reference) };
    if (stale !== undefined) reply.header('Warning', stale);
    // A GET is a pull even when it ends in 304 (the client had the bytes, it still pulled the image).
    if (pull) ctx.pulls.count(name, reference.kind === 'tag' ? reference : { kind: 'digest', digest: reference.digest.value });
    if (pull) ctx.pullEvents.pulled(name, record, reference.kind === 'tag' ? reference.tag : undefined, requestOrigin(request, principal));
    if (pull)
      ctx.emit({ action: 'pull', repository: name, digest: record.digest, principal, request, ...(reference.kind === 'tag' ? { tag: reference.tag } : {}) });
    return record;
  }

  app.head<{ Params: { name: string; reference: string } }>(path, async (request, reply) => {
    const record = await fetch(request, reply, false);
    reply.header('Docker-Content-Digest', record.digest).header('ETag', `"${record.digest}"`);
    if (notModified(request, record.digest)) return reply.code(304).send();
    return reply.code(200).type(record.mediaType).header('Content-Length', record.size).send();
  });

  app.get<{ Params: { name: string; reference: string } }>(path, { exposeHeadRoute: false }, async (request, reply) => {
    const record = await fetch(request, reply, true);
    reply.header('Docker-Content-Digest', record.digest).header('ETag', `"${record.digest}"`);
    if (notModified(request, record.digest)) return reply.code(304).send();
    const bytes = await ctx.manifests.read(record);
    return reply.code(200).type(record.mediaType).send(bytes);
  });

  const maxBytes = ctx.config.manifests.maxBytes;
  const pushAccess = authorizeFirst<{ Params: { name: string; reference: string } }>(ctx, {
    needs: (request) => [{ type: 'repository', name: parse(request).name, actions: ['pull', 'push'] }],
    then: (request) => {
      assertWritable(ctx);
      refuseDeclaredLength(request, maxBytes);
    },
  });

  app.put<{ Params: { name: string; reference: string } }>(path, { onRequest: pushAccess }, async (request, reply) => {
    const { name, reference } = parse(request);
    const principal = principalOf(request);
    const body = await readBody(request, maxBytes);
    if (body.length === 0) throw new OciError('MANIFEST_INVALID', 'manifest PUT needs the manifest JSON as its body');
    const extraTags = queryParams(request, 'tag');
    if (extraTags.length > MAX_TAGS_PER_PUT) throw new OciError('TAG_INVALID', `at most ${MAX_TAGS_PER_PUT} tags per manifest PUT`);
    if (extraTags.length > 0 && reference.kind === 'tag') throw new OciError('TAG_INVALID', '?tag= is only allowed when the manifest is pushed by digest');
    const token = tokenImmutabilityFor(principal, name);
    const result = await guarded(request, principal, () =>
      ctx.manifests.put(name, reference, extraTags, body, header(request, 'content-type'), token, ctx.origin(request, principal)),
    );

    ctx.emit({ action: 'push', repository: name, digest: result.digest, principal, request, ...(reference.kind === 'tag' ? { tag: reference.tag } : {}) });
    for (const tag of result.tags) {
      const previous = result.previousTags[tag];
      if (previous !== undefined && previous !== result.digest)
        ctx.emit({ action: 'tag_moved', repository: name, tag, digest: result.digest, previousDigest: previous, principal, request });
    }
    reply
      .code(201)
      .header('Location', `${repoPath(name)}/manifests/${result.digest}`)
      .header('Docker-Content-Digest', result.digest)
      .header('Content-Length', 0);
    if (result.subject) reply.header('OCI-Subject', result.subject);
    if (extraTags.length > 0) reply.header('OCI-Tag', result.tags);
    return reply.send();
  });

  // References hold no '/': a longer path is an invalid tag or digest, not an unknown endpoint.
  refuseDeeperPaths(
    app,
    { url: path, param: 'reference', methods: ['GET', 'PUT', 'DELETE'] },
    (reference, request) => (readsManifest(request) ? referenceToRead(reference) : parseReference(reference)),
    () => new OciError('MANIFEST_UNKNOWN'),
  );

  const deleteAccess = authorizeFirst<{ Params: { name: string; reference: string } }>(ctx, {
    needs: (request) => [{ type: 'repository', name: parse(request).name, actions: ['delete'] }],
  });

  app.delete<{ Params: { name: string; reference: string } }>(path, { onRequest: deleteAccess }, async (request, reply) => {
    const { name, reference } = parse(request);
    const principal = principalOf(request);
    assertDeletable(ctx);
    const token = tokenImmutabilityFor(principal, name);
    if (reference.kind === 'digest') {
      await guarded(request, principal, () => ctx.manifests.deleteByDigest(name, reference.digest, token, ctx.origin(request, principal)));
      ctx.emit({ action: 'delete', repository: name, digest: reference.digest.value, principal, request });
    } else {
      await guarded(request, principal, () => ctx.manifests.deleteTag(name, reference.tag, token, ctx.origin(request, principal)));
      ctx.emit({ action: 'delete', repository: name, tag: reference.tag, principal, request });
    }
    return reply.code(202).header('Content-Length', 0).send();
  });
}
