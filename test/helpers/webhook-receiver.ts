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
  /** The client's port: requests on one kept-alive connection share it. */
  remotePort: number;
}

/**
 * How to answer one request. `hang` never answers (for timeouts); `close` drops the connection after
 * reading the request.
 */
export type Reply = { status: number; headers?: Record<string, string>; body?: string | Buffer } | { hang: true } | { close: true };

export interface WebhookReceiver {
  readonly url: string;
  readonly port: number;
  readonly requests: ReceivedRequest[];
  /** Replies used in order, one per request; when they run out, `fallback` answers. */
  reply(...replies: Reply[]): void;
  /** Resolves once `count` requests have arrived in all; rejects after `timeoutMs`. */
  received(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(
  options: { fallback?: Reply; tls?: { cert: string | Buffer; key: string | Buffer } } = {},
): Promise<WebhookReceiver> {
  const queue: Reply[] = [];
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  const fallback = options.fallback ?? { status: 200 };
  const arrivals = new EventEmitter();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
        remotePort: req.socket.remotePort ?? 0,
      });
      arrivals.emit('request');
      const reply = queue.shift() ?? fallback;
      if ('hang' in reply) return;
      if ('close' in reply) {
        req.socket.destroy();
        return;
      }
      res.writeHead(reply.status, reply.headers);
      res.end(reply.body);
    });
  };
  const server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handler) : http.createServer(handler);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    reply: (...replies) => queue.push(...replies),
    received: (count, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        if (requests.length >= count) return resolve();
        const timer = setTimeout(() => {
          arrivals.off('request', check);
          reject(new Error(`expected ${count} requests within ${timeoutMs} ms, got ${requests.length}`));
        }, timeoutMs);
        function check() {
          if (requests.length < count) return;
          clearTimeout(timer);
          arrivals.off('request', check);
          resolve();
        }
        arrivals.on('request', check);
      }),
    close: async () => {
      // Hanging requests would keep close() waiting for ever.
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
