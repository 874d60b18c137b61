// A counting HTTP forward proxy on loopback, put between a registry and its S3 server: every request is
// streamed through untouched and counted by method and path, so storage reads are counted at the S3
// side of the wire rather than trusted from the registry's own metrics.
import { Agent, createServer, request, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

export interface CountingProxy {
  url: string;
  /** Requests seen since the last reset, as `METHOD path` (query string dropped) → count. */
  counts(): Map<string, number>;
  /** Response body bytes sent back since the last reset, by the same keys. */
  bytes(): Map<string, number>;
  /** Why forwarding failed (answered 502 or cut), `METHOD path: message`, since the last reset. */
  failures(): string[];
  reset(): void;
  close(): Promise<void>;
}

export async function startCountingProxy(upstream: string): Promise<CountingProxy> {
  const target = new URL(upstream);
  // A fresh connection per request: s3rver closes idle keep-alive sockets after 5 s, and a burst of
  // requests reusing sockets just as it does so fails with "socket hang up" (the cold fan-out's
  // followers wake together when a fill chunk lands), which would be charged to the registry.
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  let counts = new Map<string, number>();
  let bytes = new Map<string, number>();
  let failures: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const key = `${req.method ?? 'GET'} ${decodeURIComponent(path)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const out = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      // Into the map current when the bytes arrive: a reset in mid-response starts the count afresh.
      upstreamRes.on('data', (chunk: Buffer) => bytes.set(key, (bytes.get(key) ?? 0) + chunk.length));
      upstreamRes.pipe(res);
    });
    out.on('error', (err) => {
      failures.push(`${key}: ${err.message}`);
      if (!res.headersSent) res.writeHead(502).end(err.message);
      else res.destroy(err);
    });
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts: () => counts,
    bytes: () => bytes,
    failures: () => failures,
    reset: () => {
      counts = new Map();
      bytes = new Map();
      failures = [];
    },
    close: async () => {
      server.closeAllConnections();
      server.close();
      agent.destroy();
      await once(server, 'close').catch(() => undefined);
    },
  };
}
