import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/**
 * Body bytes in and out of each request, shared by the metrics and the access log.
 *
 * Counting is done by wrapping the instance's own `push` (how Node's HTTP parser hands body chunks to
 * the request stream) and `write`/`end` on the response. Unlike a counting Transform in preParsing, this
 * never changes who consumes the body or when: a route may read `request.raw` directly, leave the body
 * unread, or abort, and the bytes that actually crossed the wire are still counted.
 */

interface Traffic {
  received: number;
  sent: number;
}

const traffic = new WeakMap<FastifyRequest, Traffic>();
const installed = new WeakSet<FastifyInstance>();

function chunkLength(chunk: unknown, encoding?: unknown): number {
  if (chunk === null || chunk === undefined || typeof chunk === 'function') return 0;
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  return 0;
}

function countRequest(raw: IncomingMessage, counts: Traffic): void {
  // Chunks parsed before this hook ran are still buffered: nothing reads the body before onRequest.
  counts.received = raw.readableLength;
  const push = raw.push;
  raw.push = function countedPush(this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding): boolean {
    counts.received += chunkLength(chunk);
    return push.call(this, chunk, encoding);
  };
}

function countResponse(res: ServerResponse, counts: Traffic, isHead: boolean): void {
  if (isHead) return;
  const write = res.write;
  const end = res.end;
  res.write = function countedWrite(this: ServerResponse, ...args: unknown[]): boolean {
    counts.sent += chunkLength(args[0], args[1]);
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as ServerResponse['write'];
  res.end = function countedEnd(this: ServerResponse, ...args: unknown[]): ServerResponse {
    counts.sent += chunkLength(args[0], args[1]);
    return (end as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['end'];
}

/** Adds the counting hook once per root instance; safe to call from several plugins. */
export function installTrafficCounter(app: FastifyInstance): void {
  if (installed.has(app)) return;
  installed.add(app);
  app.addHook('onRequest', (request, reply, done) => {
    const counts: Traffic = { received: 0, sent: 0 };
    traffic.set(request, counts);
    countRequest(request.raw, counts);
    countResponse(reply.raw, counts, request.method === 'HEAD');
    done();
  });
}

export function trafficOf(request: FastifyRequest): Traffic {
  return traffic.get(request) ?? { received: 0, sent: 0 };
}
