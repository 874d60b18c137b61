import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError } from '../errors.js';
import { assertName, assertUploadId, parseDigest } from '../registry/references.js';
import type { UploadSession } from '../../storage-drivers/metadata/types.js';
import type { RouteContext } from './context.js';
import { assertWritable } from './access.js';
import { blobLocation } from './blobs.js';
import { refuseDeeperPaths } from './deeper-paths.js';
import { chunkRange, contentLength, queryParam, repoPath, uploadRange } from './http.js';
import { REPO_PREFIX } from './url-rewrite.js';

type UploadRequest = FastifyRequest<{ Params: { name: string; uuid: string } }>;

function uploadLocation(name: string, id: string): string {
  return `${repoPath(name)}/blobs/uploads/${id}`;
}

/** Upload sessions. Bodies are never parsed or buffered here: the raw request streams to storage. */
export async function uploadRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  const push = async (request: FastifyRequest, name: string) => {
    const principal = await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull', 'push'] }]);
    assertWritable(ctx);
    return principal;
  };

  function sessionHeaders(reply: FastifyReply, name: string, session: UploadSession): FastifyReply {
    return reply
      .header('Location', uploadLocation(name, session.id))
      .header('Docker-Upload-UUID', session.id)
      .header('Range', uploadRange(session.offset))
      .header('Content-Length', 0);
  }

  function created(reply: FastifyReply, name: string, digest: string): FastifyReply {
    return reply.code(201).header('Location', blobLocation(name, digest)).header('Docker-Content-Digest', digest).header('Content-Length', 0).send();
  }

  function abortSignal(request: FastifyRequest): AbortSignal {
    const abort = new AbortController();
    request.raw.once('close', () => {
      if (!request.raw.complete) abort.abort();
    });
    return abort.signal;
  }

  app.post<{ Params: { name: string } }>(`${REPO_PREFIX}:name/blobs/uploads/`, async (request, reply) => {
    const name = assertName(request.params.name);
    // Everything the client sent is checked before a session exists, so a bad request leaves nothing behind.
    const mountParam = queryParam(request, 'mount', 'DIGEST_INVALID');
    const mount = mountParam === undefined ? undefined : parseDigest(mountParam);
    const from = queryParam(request, 'from', 'NAME_INVALID');
    if (from !== undefined) assertName(from);
    const digestParam = queryParam(request, 'digest', 'DIGEST_INVALID');
    const digest = digestParam === undefined ? undefined : parseDigest(digestParam);
    const length = contentLength(request);
    const principal = await push(request, name);

    if (mount !== undefined) {
      // Without pull on `from` the mount quietly becomes an ordinary upload (202), as in distribution,
      // so a client is never challenged for a scope its push token cannot carry.
      const link = await ctx.blobs.mount(
        name,
        mount,
        from,
        (source) => ctx.authorizer.allows(request, { type: 'repository', name: source, actions: ['pull'] }),
        ctx.origin(request, principal),
      );
      if (link) {
        ctx.emit({ action: 'blob_mount', repository: name, digest: mount.value, principal, request });
        return created(reply, name, mount.value);
      }
    }

    const session = await ctx.uploads.start(name);
    if (digest !== undefined) {
      try {
        await ctx.uploads.finish(name, session.id, digest, { body: request.raw, length, signal: abortSignal(request) }, ctx.origin(request, principal));
      } catch (err) {
        // The client never learned this session's id, so nobody could resume it: drop it and its bytes.
        await ctx.uploads.cancel(name, session.id).catch(() => undefined);
        throw err;
      }
      ctx.emit({ action: 'blob_push', repository: name, digest: digest.value, principal, request });
      return created(reply, name, digest.value);
    }
    if (ctx.config.uploads.chunkMinLength !== undefined) reply.header('OCI-Chunk-Min-Length', ctx.config.uploads.chunkMinLength);
    return sessionHeaders(reply.code(202), name, session).send();
  });

  const sessionPath = `${REPO_PREFIX}:name/blobs/uploads/:uuid`;

  function ids(request: UploadRequest): { name: string; id: string } {
    return { name: assertName(request.params.name), id: assertUploadId(request.params.uuid) };
  }

  app.get<{ Params: { name: string; uuid: string } }>(sessionPath, async (request, reply) => {
    const { name, id } = ids(request);
    await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull', 'push'] }]);
    const session = await ctx.uploads.status(name, id);
    return sessionHeaders(reply.code(204), name, session).send();
  });

  app.patch<{ Params: { name: string; uuid: string } }>(sessionPath, async (request, reply) => {
    const { name, id } = ids(request);
    await push(request, name);
    const range = chunkRange(request);
    const session = await ctx.uploads.append(name, id, { body: request.raw, range, length: contentLength(request), signal: abortSignal(request) });
    return sessionHeaders(reply.code(202), name, session).send();
  });

  app.put<{ Params: { name: string; uuid: string } }>(sessionPath, async (request, reply) => {
    const { name, id } = ids(request);
    const principal = await push(request, name);
    const digestParam = queryParam(request, 'digest', 'DIGEST_INVALID');
    if (digestParam === undefined) throw new OciError('DIGEST_INVALID', 'PUT that completes an upload needs ?digest=<algorithm:hex> of the whole blob');
    const digest = parseDigest(digestParam);
    const range = chunkRange(request);
    const length = contentLength(request);
    await ctx.uploads.finish(name, id, digest, { body: request.raw, range, length, signal: abortSignal(request) }, ctx.origin(request, principal));
    ctx.emit({ action: 'blob_push', repository: name, digest: digest.value, principal, request });
    return created(reply, name, digest.value);
  });

  // Ids spanning several segments (`../../etc`, `<uuid>/x`) match no session route; they name no upload either.
  refuseDeeperPaths(
    app,
    { url: sessionPath, param: 'uuid', methods: ['GET', 'PATCH', 'PUT', 'DELETE'] },
    assertUploadId,
    () => new OciError('BLOB_UPLOAD_UNKNOWN'),
  );

  app.delete<{ Params: { name: string; uuid: string } }>(sessionPath, async (request, reply) => {
    const { name, id } = ids(request);
    await push(request, name);
    await ctx.uploads.cancel(name, id);
    return reply.code(204).header('Content-Length', 0).send();
  });
}
