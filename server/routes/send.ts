import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BlobContent } from '../registry/blobs.js';
import { CorruptObjectError } from '../registry/integrity.js';

/**
 * Sends what the blob service decided a GET answers with. The one place a response is hijacked: a
 * driver's sender writes straight to the socket.
 */
export async function sendBlob(request: FastifyRequest, reply: FastifyReply, content: BlobContent, digest: string): Promise<FastifyReply> {
  if (content.kind === 'redirect') return reply.code(307).header('Location', content.location).send();
  reply.type('application/octet-stream');
  if (content.kind === 'buffer') return reply.code(200).header('Content-Length', content.length).send(content.bytes);
  if (content.range) reply.code(206).header('Content-Range', `bytes ${content.range.start}-${content.range.end}/${content.size}`);
  else reply.code(200);
  reply.header('Content-Length', content.length);

  const abort = new AbortController();
  const raw = reply.raw;
  // Only a client that leaves early aborts the read; a finished response must not pay for an AbortError.
  const left = () => {
    if (!raw.writableFinished) abort.abort();
  };
  // The client may have gone while the service opened the blob.
  if (raw.destroyed) left();
  else raw.once('close', left);

  if (content.kind === 'stream') return reply.send(await content.open(abort.signal));
  const { sender } = content;
  // Fastify's onResponse hooks (metrics, access log) still run on the response's finish, but its
  // onSend does not, so the API version header goes in here.
  reply.hijack();
  try {
    raw.writeHead(reply.statusCode, { ...reply.getHeaders(), 'docker-distribution-api-version': 'registry/2.0' } as OutgoingHttpHeaders);
    await sender.sendTo(raw, abort.signal);
    raw.end();
  } catch (err) {
    // Headers are out: all that is left is to cut the connection so the client sees a short body.
    // A corrupt object was already logged (and quarantined) by the blob service.
    if (!abort.signal.aborted && !(err instanceof CorruptObjectError)) request.log.warn({ err, digest }, 'blob send failed');
    raw.destroy();
  } finally {
    await sender.close();
  }
  return reply;
}
