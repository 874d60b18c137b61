import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError } from '../errors.js';
import { CorruptObjectError } from '../registry/integrity.js';
import { assertName, parseDigest } from '../registry/references.js';
import { authorizeFirst, principalOf } from './access.js';
import type { RouteContext } from './context.js';
import { byteRange, notModified, repoPath } from './http.js';
import { REPO_PREFIX } from './url-rewrite.js';

/** Blobs up to this size are read whole and sent as one buffer. */
const SMALL_BLOB_BYTES = 64 * 1024;

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
    if (ctx.config.storage.redirect) {
      const url = await ctx.blobs.redirectUrl(digest);
      if (url) return reply.code(307).header('Location', url).send();
    }
    reply.type('application/octet-stream');
    if (!range && size <= SMALL_BLOB_BYTES) {
      // Configs and small layers: one read into a buffer costs a fraction of setting up a stream.
      return reply.code(200).header('Content-Length', size).send(await ctx.blobs.read(digest, size));
    }
    const abort = new AbortController();
    // Only a client that leaves early aborts the read; a finished response must not pay for an AbortError.
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    if (range) {
      reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`).header('Content-Length', range.end - range.start + 1);
    } else {
      reply.code(200).header('Content-Length', size);
    }
    const sender = await ctx.blobs.openSender(digest, size, range);
    if (!sender) return reply.send(await ctx.blobs.open(digest, size, range, abort.signal));
    // The driver writes straight to the socket; Fastify's onResponse hooks (metrics, access log) still
    // run on the response's finish, but its onSend does not, so the API version header goes in here.
    reply.hijack();
    const raw = reply.raw;
    try {
      raw.writeHead(reply.statusCode, { ...reply.getHeaders(), 'docker-distribution-api-version': 'registry/2.0' } as OutgoingHttpHeaders);
      await sender.sendTo(raw, abort.signal);
      raw.end();
    } catch (err) {
      // Headers are out: all that is left is to cut the connection so the client sees a short body.
      // A corrupt object was already logged (and quarantined) by the blob service.
      if (!abort.signal.aborted && !(err instanceof CorruptObjectError)) request.log.warn({ err, digest: digest.value }, 'blob send failed');
      raw.destroy();
    } finally {
      await sender.close();
    }
    return reply;
  });

  // A digest holds no '/': a longer path names no blob, and answering 404 NOT_FOUND would hide why.
  app.route<{ Params: { name: string; digest: string; '*': string } }>({
    method: ['GET', 'DELETE'],
    url: `${path}/*`,
    handler: async (request) => {
      assertName(request.params.name);
      parseDigest(`${request.params.digest}/${request.params['*']}`);
      throw new OciError('BLOB_UNKNOWN');
    },
  });

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
    if (!ctx.config.delete.enabled) throw new OciError('UNSUPPORTED', 'deletes are disabled on this registry (delete.enabled: false)');
    if (ctx.config.readOnly) throw readOnlyError();
    await ctx.blobs.unlink(name, digest);
    ctx.emit({ action: 'blob_delete', repository: name, digest: digest.value, principal, request });
    return reply.code(202).header('Docker-Content-Digest', digest.value).header('Content-Length', 0).send();
  });
}

export function readOnlyError(): OciError {
  return new OciError('UNSUPPORTED', 'this registry is in read-only mode (maintenance); pulls work, pushes and deletes are refused');
}

export function blobLocation(name: string, digest: string): string {
  return `${repoPath(name)}/blobs/${digest}`;
}
