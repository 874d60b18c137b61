// Webhook endpoints for the events benchmark, in the bench process on 127.0.0.1: one that answers at
// once, one that answers only after a delay (a slow receiver), and a port nobody listens on (down).
// They count requests and keep no bodies, so they cost the client as little as they can.
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { freePort } from '../test/helpers/berth-process.js';

export interface CountingReceiver {
  readonly url: string;
  /** Requests answered so far. */
  answered(): number;
  /** Requests that arrived and wait for their (delayed) answer now. */
  waiting(): number;
  close(): Promise<void>;
}

/** An endpoint that reads each request and answers 200 after `delayMs` (0: at once). */
export async function startReceiver(delayMs: number): Promise<CountingReceiver> {
  let answered = 0;
  let waiting = 0;
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    req.once('end', () => {
      const reply = () => {
        answered++;
        res.writeHead(200, { 'Content-Length': 0 }).end();
      };
      if (delayMs === 0) return reply();
      waiting++;
      const timer = setTimeout(() => {
        timers.delete(timer);
        waiting--;
        reply();
      }, delayMs);
      timers.add(timer);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    answered: () => answered,
    waiting: () => waiting,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A loopback URL whose port was free a moment ago and is left unbound: connections are refused. */
export async function refusedUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}/hook`;
}
