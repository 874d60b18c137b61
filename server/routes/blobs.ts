import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError } from '../errors.js';
import type { ServedBlob } from '../registry/proxy/fills.js';
import { assertName, parseDigest, type ParsedDigest } from '../registry/references.js';
import { assertDeletable, authorizeFirst, principalOf } from './access.js';
import type { RouteContext } from './context.js';
import { refuseDeeperPaths } from './deeper-paths.js';
import { fillRange } from './fill-range.js';
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
    const { size, filling } = await locate(name, digest);
    reply.header('Docker-Content-Digest', digest.value);
    reply.header('ETag', `"${digest.value}"`);
    reply.header('Accept-Ranges', 'bytes');
    reply.header('Cache-Control', 'max-age=31536000');
    return { name, digest, size, filling };
  }

  /** The blob's link in `name`; in a proxy namespace, a blob not linked yet comes from its one fill. */
  async function locate(name: string, digest: ParsedDigest): Promise<{ size: number; filling?: ServedBlob }> {
    const target = ctx.proxy?.namespaces.resolve(name);
    try {
      return { size: (await ctx.blobs.stat(name, digest)).size };
    } catch (err) {
      if (!(target && ctx.proxy && err instanceof OciError && err.code === 'BLOB_UNKNOWN')) throw err;
      const filling = await ctx.proxy.blobs.serve(name, target, digest);
      return { size: filling.size, filling };
    }
  }

  app.head<{ Params: { name: string; digest: string } }>(path, async (request, reply) => {
    const { digest, size, filling } = await prepare(request, reply, ['pull']);
    // A HEAD of a blob not cached yet starts its fill (the GET that follows joins it) and sends nothing of it.
    filling?.stream.destroy();
    if (notModified(request, digest.value)) return reply.code(304).send();
    return reply.code(200).type('application/octet-stream').header('Content-Length', size).send();
  });

  app.get<{ Params: { name: string; digest: string } }>(path, { exposeHeadRoute: false }, async (request, reply) => {
    const { digest, size, filling } = await prepare(request, reply, ['pull']);
    if (filling) {
      if (notModified(request, digest.value)) {
        filling.stream.destroy();
        return reply.code(304).send();
      }
      let range;
      try {
        range = byteRange(request, size);
      } catch (err) {
        filling.stream.destroy();
        throw err;
      }
      reply.type('application/octet-stream');
      if (!range) return reply.code(200).header('Content-Length', size).send(filling.stream);
      return reply
        .code(206)
        .header('Content-Range', `bytes ${range.start}-${range.end}/${size}`)
        .header('Content-Length', range.end - range.start + 1)
        .send(fillRange(filling, range.start, range.end));
    }
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
