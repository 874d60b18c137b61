import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { OciError } from '../errors.js';
import { header } from './http.js';

/**
 * How much of a body Berth throws away after answering without reading it (a 401, a 413). Reading
 * the rest keeps the connection usable and lets a client that is still sending read the answer; a
 * server that closes instead makes most clients fail with EPIPE before they see the status.
 * Beyond this the connection is closed: nobody needs to send more to learn they were refused.
 */
export const DISCARD_LIMIT_BYTES = 32 * 1024 * 1024;

/**
 * For the server's 'checkContinue' event: `100 Continue` goes out when a route first reads the body,
 * not when the headers arrive (Node's default). A request refused from its headers (401, 403, 413)
 * is then answered before the client has sent a byte of the body.
 */
export function continueOnFirstRead(req: IncomingMessage, res: ServerResponse): void {
  const read = req._read;
  req._read = function readAfterContinue(this: IncomingMessage, size: number): void {
    req._read = read;
    if (!res.headersSent && !res.writableEnded) res.writeContinue();
    read.call(this, size);
  };
}

function tooLarge(limit: number, headers: Record<string, string> = {}): OciError {
  return new OciError(
    'MANIFEST_TOO_LARGE',
    `manifest larger than manifests.maxBytes (${limit} bytes): keep large data in blobs the manifest references`,
    undefined,
    headers,
  );
}

/** A declared Content-Length over `limit` is refused before a byte is read. */
export function refuseDeclaredLength(request: FastifyRequest, limit: number): void {
  const declared = Number(header(request, 'content-length'));
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
}

/** Reads a whole body of at most `limit` bytes; a longer one (chunked) is refused as soon as it passes the limit. */
export function readBody(request: FastifyRequest, limit: number): Promise<Buffer> {
  const raw = request.raw;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = () => {
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('error', onClose);
      raw.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) {
        // The rest is discarded by discardUnreadBody once the 413 is on its way.
        cleanup();
        raw.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, received));
    };
    const onClose = () => {
      cleanup();
      reject(new OciError('MANIFEST_INVALID', 'the connection closed before the whole body arrived'));
    };
    raw.on('data', onData);
    raw.once('end', onEnd);
    raw.once('error', onClose);
    raw.once('close', onClose);
  });
}

/**
 * For onSend: a response that goes out before its request body was read (refused from the headers,
 * or a body cut off at a limit) reads and drops the rest, at most DISCARD_LIMIT_BYTES, so the client
 * can read the answer and reuse the connection. A longer body is not waited for: the connection closes
 * after the response.
 */
export function discardUnreadBody(request: FastifyRequest, reply: FastifyReply): void {
  const raw = request.raw;
  if (raw.complete || raw.destroyed || raw.listenerCount('data') > 0) return;
  const declared = Number(header(request, 'content-length'));
  if (Number.isFinite(declared) && declared > DISCARD_LIMIT_BYTES) {
    reply.header('Connection', 'close');
    return;
  }
  let discarded = 0;
  const onData = (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_LIMIT_BYTES) {
      raw.off('data', onData);
      raw.socket?.destroy();
    }
  };
  raw.on('data', onData);
  raw.once('end', () => raw.off('data', onData));
  raw.resume();
}
