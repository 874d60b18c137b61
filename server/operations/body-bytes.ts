import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

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

export interface Completion {
  /** The connection closed before the response was complete (client gone, stream failed). */
  aborted: boolean;
  /** The status to report: the reply's, or 499 (as nginx) when the client left before any header was sent. */
  status: number;
}

/**
 * Calls `done` exactly once per request. Fastify's onResponse runs only when the response finishes
 * (or errors), so a client that disconnects mid-upload would otherwise leave no access line and no
 * metric; the response's 'close' catches those.
 */
export function onRequestComplete(app: FastifyInstance, done: (request: FastifyRequest, reply: FastifyReply, completion: Completion) => void): void {
  const reported = new WeakSet<FastifyRequest>();
  const report = (request: FastifyRequest, reply: FastifyReply, aborted: boolean) => {
    if (reported.has(request)) return;
    reported.add(request);
    done(request, reply, { aborted, status: aborted && !reply.raw.headersSent ? 499 : reply.statusCode });
  };
  app.addHook('onRequest', (request, reply, next) => {
    reply.raw.once('close', () => {
      // A finished response is reported by onResponse, which may run after 'close'.
      if (!reply.raw.writableFinished) report(request, reply, true);
    });
    next();
  });
  app.addHook('onResponse', (request, reply, next) => {
    // onResponse also runs on a response 'error'; only a response whose end() was reached is complete.
    report(request, reply, !reply.raw.writableEnded);
    next();
  });
}
