// A lean registry client on node:http with keep-alive: pushes stream synthetic blobs with backpressure,
// pulls count bytes without keeping or hashing them, so the client spends as little CPU as it can.
import { Agent, request, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import { pieces, type SmallBlob, type SyntheticBlob, OCI_MANIFEST } from './blobs.js';

export type PushMode = 'monolithic' | 'streamed' | 'chunked';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  bytes: number;
  body: Buffer | undefined;
}

const REQUEST_TIMEOUT_MS = 300_000;

export function newAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
}

/** One HTTP exchange. `write` streams the body (the request is ended afterwards); `keep` keeps the reply body. */
export function send(
  agent: Agent,
  method: string,
  url: string,
  headers: Record<string, string | number>,
  write?: (req: ClientRequest) => Promise<void>,
  keep = false,
): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const req = request(url, { method, headers, agent, timeout: REQUEST_TIMEOUT_MS });
    req.once('timeout', () => req.destroy(new Error(`${method} ${url}: no progress for ${REQUEST_TIMEOUT_MS} ms`)));
    req.once('error', reject);
    req.once('response', (res) => {
      let bytes = 0;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (keep) chunks.push(chunk);
      });
      res.once('error', reject);
      res.once('close', () => {
        if (!res.complete) reject(new Error(`${method} ${url}: the connection closed mid-response`));
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, body: keep ? Buffer.concat(chunks) : undefined }));
    });
    if (!write) {
      req.end();
      return;
    }
    write(req).then(
      () => req.end(),
      (err: unknown) => req.destroy(err as Error),
    );
  });
}

/** Resolves on 'drain' or 'close', leaving no listener behind (a blob makes thousands of these waits). */
function drained(req: ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}

async function writePieces(req: ClientRequest, blob: SyntheticBlob, start: number, end: number): Promise<void> {
  for (const piece of pieces(blob, start, end)) {
    if (!req.write(piece)) await drained(req);
    if (req.destroyed) return;
  }
}

function expect(reply: Reply, status: number, what: string): Reply {
  if (reply.status !== status)
    throw new Error(`${what}: HTTP ${reply.status}, expected ${status}${reply.body ? `: ${reply.body.toString('utf8').slice(0, 300)}` : ''}`);
  return reply;
}

function location(reply: Reply, base: string, what: string): string {
  const loc = reply.headers.location;
  if (!loc) throw new Error(`${what}: no Location header`);
  return new URL(loc, base).toString();
}

function withDigest(url: string, digest: string): string {
  const u = new URL(url);
  u.searchParams.set('digest', digest);
  return u.toString();
}

/**
 * Pushes one blob the way clients do. monolithic: POST, then PUT with the whole body; streamed: POST,
 * one PATCH with a chunked-encoded body (docker's way), PUT; chunked: POST, PATCHes of `chunkBytes`
 * with Content-Range (containerd/oras style), PUT.
 */
export async function pushBlob(agent: Agent, base: string, repo: string, blob: SyntheticBlob, mode: PushMode, chunkBytes: number): Promise<void> {
  const start = expect(await send(agent, 'POST', `${base}/v2/${repo}/blobs/uploads/`, { 'Content-Length': 0 }, undefined, true), 202, 'start upload');
  let url = location(start, base, 'start upload');
  const octets = 'application/octet-stream';
  if (mode === 'monolithic') {
    const put = await send(
      agent,
      'PUT',
      withDigest(url, blob.digest),
      { 'Content-Type': octets, 'Content-Length': blob.size },
      (req) => writePieces(req, blob, 0, blob.size),
      true,
    );
    expect(put, 201, 'monolithic PUT');
    return;
  }
  if (mode === 'streamed') {
    const patch = await send(
      agent,
      'PATCH',
      url,
      { 'Content-Type': octets, 'Transfer-Encoding': 'chunked' },
      (req) => writePieces(req, blob, 0, blob.size),
      true,
    );
    url = location(expect(patch, 202, 'streamed PATCH'), base, 'streamed PATCH');
  } else {
    for (let offset = 0; offset < blob.size; offset += chunkBytes) {
      const end = Math.min(blob.size, offset + chunkBytes);
      const headers = { 'Content-Type': octets, 'Content-Length': end - offset, 'Content-Range': `${offset}-${end - 1}` };
      const patch = await send(agent, 'PATCH', url, headers, (req) => writePieces(req, blob, offset, end), true);
      url = location(expect(patch, 202, `PATCH ${offset}-${end - 1}`), base, 'PATCH');
    }
  }
  expect(await send(agent, 'PUT', withDigest(url, blob.digest), { 'Content-Length': 0 }, undefined, true), 201, 'closing PUT');
}

/** Monolithic push of a small in-memory blob. */
export async function pushSmall(agent: Agent, base: string, repo: string, blob: SmallBlob): Promise<void> {
  const start = expect(await send(agent, 'POST', `${base}/v2/${repo}/blobs/uploads/`, { 'Content-Length': 0 }, undefined, true), 202, 'start upload');
  const url = withDigest(location(start, base, 'start upload'), blob.digest);
  const put = await send(
    agent,
    'PUT',
    url,
    { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.size },
    async (req) => void req.write(blob.data),
    true,
  );
  expect(put, 201, 'PUT small blob');
}

export async function putManifest(agent: Agent, base: string, repo: string, reference: string, manifest: SmallBlob): Promise<void> {
  const put = await send(
    agent,
    'PUT',
    `${base}/v2/${repo}/manifests/${reference}`,
    { 'Content-Type': OCI_MANIFEST, 'Content-Length': manifest.size },
    async (req) => void req.write(manifest.data),
    true,
  );
  expect(put, 201, `PUT manifest ${repo}:${reference}`);
}

/** GET a blob, counting its bytes; fails unless all `size` bytes arrived. */
export async function pullBlob(agent: Agent, base: string, repo: string, digest: string, size: number): Promise<void> {
  const res = await send(agent, 'GET', `${base}/v2/${repo}/blobs/${digest}`, {});
  if (res.status !== 200 || res.bytes !== size) throw new Error(`GET blob ${digest}: HTTP ${res.status}, ${res.bytes} of ${size} bytes`);
}

/** Runs `work` over `items` with at most `concurrency` in flight; the first failure rejects. */
export async function pool<T>(items: T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index] as T, index);
    }
  });
  await Promise.all(workers);
}
