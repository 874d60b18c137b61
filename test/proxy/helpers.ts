import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { proxyConfigSchema } from '../../server/registry/proxy/config.js';
import { Upstream, type UpstreamEvent, type UpstreamOptions } from '../../server/registry/proxy/upstream.js';
import { resolveUpstreams } from '../../server/registry/proxy/upstreams.js';
import { RegistryClient, blob, imageManifest, randomBlob, type Blob } from '../helpers/oci.js';

/** An Upstream built the way serve builds it: the config section parsed, the password resolved from `env`. */
export function makeUpstream(
  config: Record<string, unknown>,
  options: UpstreamOptions & { env?: NodeJS.ProcessEnv } = {},
): { upstream: Upstream; events: UpstreamEvent[] } {
  const proxy = proxyConfigSchema.parse({ upstreams: [{ namespace: 'up', ...config }] });
  const [resolved] = resolveUpstreams(proxy, { env: options.env ?? {} });
  if (!resolved) throw new Error('no upstream');
  const events: UpstreamEvent[] = [];
  const upstream = new Upstream(resolved, {
    now: options.now,
    observer: (event) => {
      events.push(event);
      options.observer?.(event);
    },
  });
  return { upstream, events };
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface FakeServer {
  url: string;
  origin: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/** A real HTTP server on a free loopback port answering with `handler`, recording every request. */
export async function startFakeServer(handler: (req: http.IncomingMessage, res: http.ServerResponse, server: FakeServer) => void): Promise<FakeServer> {
  const requests: SeenRequest[] = [];
  const server = http.createServer();
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const fake: FakeServer = {
    url: `http://127.0.0.1:${port}`,
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res, fake);
  });
  return fake;
}

export function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Drains a stream into one Buffer. */
export async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Waits until `check` holds, polling every 5 ms, failing after `ms`. */
export async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** distribution 2.8 has no monolithic POST ?digest=: start an upload, then PUT its bytes. */
export async function pushToDistribution(base: string, repo: string, tag: string): Promise<{ manifest: Blob; layers: Blob[] }> {
  const client = new RegistryClient(base);
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layers = [randomBlob(150_000)];
  for (const b of [config, ...layers]) {
    const started = await client.fetch(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    await started.arrayBuffer();
    assert.equal(started.status, 202);
    const location = new URL(started.headers.get('location') ?? '', base);
    location.searchParams.set('digest', b.digest);
    const put = await fetch(location, { method: 'PUT', body: b.data, headers: { 'Content-Type': 'application/octet-stream' } });
    await put.arrayBuffer();
    assert.equal(put.status, 201);
  }
  const manifest = imageManifest(config, layers);
  await client.pushManifest(repo, tag, manifest);
  return { manifest, layers };
}
