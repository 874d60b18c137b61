// A real HTTP (or HTTPS) server on 127.0.0.1 standing in for a webhook endpoint: it records every
// request and answers as the test tells it to, request by request.
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body as JSON, when it is JSON. */
  json: unknown;
  /** The Berth-Event-Id header ('' without one). */
  eventId: string;
  /** The client's port: requests on one kept-alive connection share it. */
  remotePort: number;
}

/**
 * How to answer one request. `hang` answers only on release() (or never: for timeouts); `close` drops
 * the connection after reading the request.
 */
export type Reply = { status: number; headers?: Record<string, string>; body?: string | Buffer } | { hang: true } | { close: true };

export interface WebhookReceiver {
  readonly url: string;
  readonly port: number;
  readonly requests: ReceivedRequest[];
  /** Replies used in order, one per request; when they run out, `answer` (else `fallback`) answers. */
  reply(...replies: Reply[]): void;
  /** Decides the answer of each request the queued replies do not cover. */
  answer(decide: (request: ReceivedRequest) => Reply): void;
  /** Answers every request held by `hang` so far. */
  release(status?: number): void;
  /** Resolves once `count` requests have arrived in all; rejects after `timeoutMs`. */
  received(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves once `done(requests)` holds (checked on each arrival); rejects after `timeoutMs`, saying `what`. */
  waitFor(done: (requests: ReceivedRequest[]) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  /** Stops listening: the endpoint is down (connections refused) until listen(). */
  stop(): Promise<void>;
  /** Listens again, on the same port. */
  listen(): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(
  options: { fallback?: Reply; tls?: { cert: string | Buffer; key: string | Buffer }; listening?: boolean } = {},
): Promise<WebhookReceiver> {
  const queue: Reply[] = [];
  const requests: ReceivedRequest[] = [];
  const held: http.ServerResponse[] = [];
  const sockets = new Set<Socket>();
  const fallback = options.fallback ?? { status: 200 };
  let decide: ((request: ReceivedRequest) => Reply) | undefined;
  const arrivals = new EventEmitter();
  arrivals.setMaxListeners(100);
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        json = undefined;
      }
      const request: ReceivedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        json,
        eventId: String(req.headers['berth-event-id'] ?? ''),
        remotePort: req.socket.remotePort ?? 0,
      };
      const reply = queue.shift() ?? decide?.(request) ?? fallback;
      requests.push(request);
      arrivals.emit('request');
      if ('hang' in reply) {
        held.push(res);
        return;
      }
      if ('close' in reply) {
        req.socket.destroy();
        return;
      }
      res.writeHead(reply.status, reply.headers);
      res.end(reply.body);
    });
  };
  const createServer = () => {
    const server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handler) : http.createServer(handler);
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    server.on('secureConnection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    return server;
  };
  let server: http.Server | undefined;
  let port = 0;
  const listen = async () => {
    if (server) return;
    const next = createServer();
    next.listen(port, '127.0.0.1');
    await once(next, 'listening');
    port = (next.address() as AddressInfo).port;
    server = next;
  };
  const stop = async () => {
    if (!server) return;
    const current = server;
    server = undefined;
    // Hanging requests would keep close() waiting for ever.
    held.splice(0);
    for (const socket of sockets) socket.destroy();
    current.close();
    await once(current, 'close');
  };
  const waitFor = (done: (requests: ReceivedRequest[]) => boolean, timeoutMs = 30_000, what = 'the expected requests') =>
    new Promise<void>((resolve, reject) => {
      if (done(requests)) return resolve();
      const timer = setTimeout(() => {
        arrivals.off('request', check);
        reject(new Error(`the receiver did not get ${what} within ${timeoutMs} ms; it got ${requests.length}: ${requests.map((r) => r.eventId).join(', ')}`));
      }, timeoutMs);
      function check() {
        if (!done(requests)) return;
        clearTimeout(timer);
        arrivals.off('request', check);
        resolve();
      }
      arrivals.on('request', check);
    });
  await listen();
  // Wanted down at first: the port is taken once (so it is known), then left free until listen().
  if (options.listening === false) await stop();
  return {
    get url() {
      return `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    requests,
    reply: (...replies) => queue.push(...replies),
    answer: (fn) => {
      decide = fn;
    },
    release: (status = 200) => {
      for (const res of held.splice(0)) {
        if (res.destroyed || res.headersSent) continue;
        res.writeHead(status);
        res.end();
      }
    },
    received: (count, timeoutMs = 10_000) => waitFor((r) => r.length >= count, timeoutMs, `${count} requests`),
    waitFor,
    stop,
    listen,
    close: stop,
  };
}
