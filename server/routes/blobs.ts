import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError } from '../errors.js';
import { assertName, parseDigest } from '../registry/references.js';
import { assertDeletable, authorizeFirst, principalOf } from './access.js';
import type { RouteContext } from './context.js';
import { refuseDeeperPaths } from './deeper-paths.js';
import { byteRange, notModified, repoPath } from './http.js';
import { sendBlob } from './send.js';
import { REPO_PREFIX } from './url-rewrite.js';

type BlobRequest = FastifyRequest<{ Params: { name: string; digest: string } }>;

export async function blobRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const path = `${REPO_PREFIX}:name/blobs/:digest`;

  async function prepare(request: BlobRequest, reply: FastifyReply, actions: string[]) {
    const name = assertName(request.params.name);
    const digest = parseDigest(request.params.digest);
    await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions }]);
    const link = await ctx.blobs.stat(name, digest);
    reply.header('Docker-Content-Digest', digest.value);
    reply.header('ETag', `"${digest.value}"`);
    reply.header('Accept-Ranges', 'bytes');
    reply.header('Cache-Control', 'max-age=31536000');
    return { name, digest, size: link.size };
  }

  app.head<{ Params: { name: string; digest: string } }>(path, async (request, reply) => {
    const { digest, size } = await prepare(request, reply, ['pull']);
    if (notModified(request, digest.value)) return reply.code(304).send();
    return reply.code(200).type('application/octet-stream').header('Content-Length', size).send();
  });

  app.get<{ Params: { name: string; digest: string } }>(path, { exposeHeadRoute: false }, async (request, reply) => {
    const { digest, size } = await prepare(request, reply, ['pull']);
    if (notModified(request, digest.value)) return reply.code(304).send();
    const range = byteRange(request, size);
    const content = await ctx.blobs.content(digest, size, range, { redirect: ctx.config.storage.redirect });
    return sendBlob(request, reply, content, digest.value);
  });

  refuseDeeperPaths(app, { url: path, param: 'digest', methods: ['GET', 'DELETE'] }, parseDigest, () => new OciError('BLOB_UNKNOWN'));

  const deleteAccess = authorizeFirst<{ Params: { name: string; digest: string } }>(ctx, {
    needs: (request) => {
      const name = assertName(request.params.name);
      parseDigest(request.params.digest);
      return [{ type: 'repository', name, actions: ['delete'] }];
    },
  });

  app.delete<{ Params: { name: string; digest: string } }>(path, { onRequest: deleteAccess }, async (request, reply) => {
    const name = assertName(request.params.name);
    const digest = parseDigest(request.params.digest);
    const principal = principalOf(request);
    assertDeletable(ctx);
    await ctx.blobs.unlink(name, digest, ctx.origin(request, principal));
    ctx.emit({ action: 'blob_delete', repository: name, digest: digest.value, principal, request });
    return reply.code(202).header('Docker-Content-Digest', digest.value).header('Content-Length', 0).send();
  });
}

export function blobLocation(name: string, digest: string): string {
  return `${repoPath(name)}/blobs/${digest}`;
}
