// The workloads, each run the same way against every target: pushes and the fan-out through the lean
// Node client, pull and request rates through wrk. Every run returns wall time plus the CPU the server
// and the client used, so a client-bound row shows itself.
import { newAgent, pool, pullBlob, pushBlob, send, type PushMode } from './client.js';
import { makeBlob, OCI_MANIFEST, type SyntheticBlob } from './blobs.js';
import { REPO, type Fixtures } from './fixtures.js';
import { measure, RssSampler } from './proc.js';
import type { Target } from './targets.js';
import { runAb } from './ab.js';
import { runWrk, type WrkSpec } from './wrk.js';
import { execFile } from 'node:child_process';
import type { Agent } from 'node:http';
import { promisify } from 'node:util';

export const MiB = 1024 * 1024;

export interface Measurement {
  /** In the workload's unit (MB/s or req/s); higher is better. */
  value: number;
  wallSeconds: number;
  serverCpuSeconds: number;
  clientCpuSeconds: number;
  bytes?: number;
  requests?: number;
  p50Ms?: number;
  p99Ms?: number;
  peakRssBytes?: number;
  /** At the peak-RSS sample: anonymous pages (heap, buffers) and file-backed pages (mapped files). */
  peakRssAnonBytes?: number;
  peakRssFileBytes?: number;
  errors?: number;
}

export type Group = 'push' | 'pull' | 'requests' | 'fanout' | 'big' | 'mixed';

export interface RunContext {
  scratch: string;
  agent: Agent;
  fixtures: Fixtures;
  /** Which repetition this is (0-based), so pushes use fresh blobs each time. */
  repeat: number;
}

export interface Workload {
  key: string;
  title: string;
  group: Group;
  unit: 'MB/s' | 'req/s';
  /** Size of the blobs, for the bar's push/pull rows. */
  blobBytes?: number;
  run(target: Target, ctx: RunContext): Promise<Measurement>;
}

export function formatSize(bytes: number): string {
  if (bytes >= 1024 * MiB) return `${bytes / (1024 * MiB)} GiB`;
  if (bytes >= MiB) return `${bytes / MiB} MiB`;
  return `${bytes / 1024} KiB`;
}

function transferMeasurement(
  m: { wallSeconds: number; serverCpuSeconds: number; clientCpuSeconds: number },
  bytes: number,
  extra: Partial<Measurement> = {},
): Measurement {
  return {
    value: bytes / 1e6 / m.wallSeconds,
    wallSeconds: m.wallSeconds,
    serverCpuSeconds: m.serverCpuSeconds,
    clientCpuSeconds: m.clientCpuSeconds,
    bytes,
    ...extra,
  };
}

export function pushWorkload(mode: PushMode, size: number, concurrency: number, count: number, chunkBytes: number): Workload {
  const blobsByRepeat = new Map<number, SyntheticBlob[]>();
  const key = `push-${mode}-${formatSize(size).replace(' ', '')}-c${concurrency}`;
  return {
    key,
    title: `push ${mode} ${formatSize(size)} ×${count}, c=${concurrency}`,
    group: 'push',
    unit: 'MB/s',
    blobBytes: size,
    async run(target, ctx) {
      let blobs = blobsByRepeat.get(ctx.repeat);
      if (!blobs) {
        blobs = Array.from({ length: count }, () => makeBlob(size));
        blobsByRepeat.set(ctx.repeat, blobs);
      }
      const list = blobs;
      const repo = `bench/${key.toLowerCase()}`;
      const m = await measure([target.pid], () => pool(list, concurrency, (blob) => pushBlob(ctx.agent, target.url, repo, blob, mode, chunkBytes)));
      return transferMeasurement(m, size * count);
    },
  };
}

async function wrkMeasurement(target: Target, spec: WrkSpec, scratch: string, warmupSeconds: number, unit: 'MB/s' | 'req/s'): Promise<Measurement> {
  const load = spec.method === 'HEAD' ? runAb : runWrk;
  if (warmupSeconds > 0) await load({ ...spec, durationSeconds: warmupSeconds }, scratch);
  const m = await measure([target.pid], () => load(spec, scratch));
  const r = m.result;
  return {
    value: unit === 'MB/s' ? r.bytesPerSecond / 1e6 : r.requestsPerSecond,
    wallSeconds: r.durationSeconds,
    serverCpuSeconds: m.serverCpuSeconds,
    clientCpuSeconds: m.clientCpuSeconds,
    bytes: r.bytes,
    requests: r.requests,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    errors: r.errors,
  };
}

export function pullWorkload(size: number, connections: number, durationSeconds: number): Workload {
  return {
    key: `pull-${formatSize(size).replace(' ', '')}-c${connections}`,
    title: `pull ${formatSize(size)}, c=${connections} (wrk, ${durationSeconds} s)`,
    group: 'pull',
    unit: 'MB/s',
    blobBytes: size,
    run(target, ctx) {
      const blob = ctx.fixtures.pullBlobs.get(size);
      if (!blob) throw new Error(`no pull fixture of ${size} bytes`);
      return wrkMeasurement(
        target,
        { url: `${target.url}/v2/${REPO.pull}/blobs/${blob.digest}`, connections, durationSeconds, timeoutSeconds: 120 },
        ctx.scratch,
        1,
        'MB/s',
      );
    },
  };
}

export const ACCEPT = { Accept: `${OCI_MANIFEST}, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json` };

/** The small-request workloads, as wrk specs relative to a target's URL. */
export function requestWorkloads(connections: number, durationSeconds: number, warmupSeconds: number): Workload[] {
  const defs: { key: string; title: string; spec: (f: Fixtures) => Omit<WrkSpec, 'url' | 'connections' | 'durationSeconds'> & { path: string } }[] = [
    { key: 'blob-get-4k', title: 'GET blob 4 KiB', spec: (f) => ({ path: `/v2/${REPO.small}/blobs/${f.smallLayer.digest}` }) },
    { key: 'blob-head', title: 'HEAD blob', spec: (f) => ({ path: `/v2/${REPO.small}/blobs/${f.smallLayer.digest}`, method: 'HEAD' }) },
    { key: 'manifest-get-tag', title: 'GET manifest by tag', spec: () => ({ path: `/v2/${REPO.small}/manifests/v1`, headers: ACCEPT }) },
    {
      key: 'manifest-get-digest',
      title: 'GET manifest by digest',
      spec: (f) => ({ path: `/v2/${REPO.small}/manifests/${f.smallManifest.digest}`, headers: ACCEPT }),
    },
    { key: 'manifest-head-tag', title: 'HEAD manifest by tag', spec: () => ({ path: `/v2/${REPO.small}/manifests/v1`, method: 'HEAD', headers: ACCEPT }) },
    {
      key: 'manifest-head-digest',
      title: 'HEAD manifest by digest',
      spec: (f) => ({ path: `/v2/${REPO.small}/manifests/${f.smallManifest.digest}`, method: 'HEAD', headers: ACCEPT }),
    },
    {
      key: 'manifest-put',
      title: 'PUT manifest (a new tag each)',
      spec: (f) => ({
        path: `/v2/${REPO.put}/manifests/x`,
        method: 'PUT',
        headers: { 'Content-Type': OCI_MANIFEST },
        body: f.putManifest.data.toString('utf8'),
        uniquePathPrefix: `/v2/${REPO.put}/manifests/w`,
      }),
    },
    { key: 'tags-list-1000', title: 'GET tags/list (1,000 tags)', spec: () => ({ path: `/v2/${REPO.tags}/tags/list` }) },
  ];
  return defs.map((d) => ({
    key: d.key,
    title: `${d.title}, c=${connections}`,
    group: 'requests',
    unit: 'req/s',
    run(target, ctx) {
      const { path, ...rest } = d.spec(ctx.fixtures);
      // A fresh tag prefix per target and repetition keeps each run's PUTs creating tags, never rewriting them.
      const unique = rest.uniquePathPrefix === undefined ? {} : { uniquePathPrefix: `${rest.uniquePathPrefix}${ctx.repeat}r${Date.now().toString(36)}-` };
      return wrkMeasurement(target, { ...rest, ...unique, url: `${target.url}${path}`, connections, durationSeconds }, ctx.scratch, warmupSeconds, 'req/s');
    },
  }));
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** `clients` concurrent pullers, each: HEAD tag → GET manifest by digest → GET config and every layer. */
export function fanoutWorkload(clients: number): Workload {
  return {
    key: `fanout-${clients}`,
    title: `fan-out: ${clients} clients pull one image (HEAD tag, GET manifest, GET each blob)`,
    group: 'fanout',
    unit: 'MB/s',
    async run(target, ctx) {
      // Its own agent: every client opens its connection, as separate nodes would.
      const agent = newAgent();
      const base = target.url;
      const durations: number[] = [];
      let bytes = 0;
      const one = async () => {
        const start = process.hrtime.bigint();
        const head = await send(agent, 'HEAD', `${base}/v2/${REPO.fanout}/manifests/latest`, ACCEPT);
        const digest = head.headers['docker-content-digest'];
        if (head.status !== 200 || typeof digest !== 'string') throw new Error(`fan-out HEAD: HTTP ${head.status}`);
        const got = await send(agent, 'GET', `${base}/v2/${REPO.fanout}/manifests/${digest}`, ACCEPT, undefined, true);
        if (got.status !== 200 || !got.body) throw new Error(`fan-out GET manifest: HTTP ${got.status}`);
        const manifest = JSON.parse(got.body.toString('utf8')) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
        bytes += got.bytes;
        for (const blob of [manifest.config, ...manifest.layers]) {
          await pullBlob(agent, base, REPO.fanout, blob.digest, blob.size);
          bytes += blob.size;
        }
        durations.push(Number(process.hrtime.bigint() - start) / 1e6);
      };
      try {
        const m = await measure([target.pid], () => Promise.all(Array.from({ length: clients }, one)));
        durations.sort((a, b) => a - b);
        return transferMeasurement(m, bytes, {
          requests: clients * (3 + ctx.fixtures.fanoutLayers.length),
          p50Ms: percentile(durations, 50),
          p99Ms: percentile(durations, 99),
        });
      } finally {
        agent.destroy();
      }
    },
  };
}

const run = promisify(execFile);
export const CURL_BINARY = '/usr/bin/curl';

/** GET with curl, discarding the body; fails unless `size` bytes arrived with status 200. */
async function curlPull(url: string, size: number): Promise<void> {
  const { stdout } = await run(CURL_BINARY, ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', url], { timeout: 600_000 });
  const [status, bytes] = stdout.trim().split(' ').map(Number);
  if (status !== 200 || bytes !== size) throw new Error(`curl GET ${url}: HTTP ${status}, ${bytes} of ${size} bytes`);
}

/** A 2 GiB push (docker's single streamed PATCH) and then its pull, sampling the server's RSS throughout. */
export function bigWorkloads(size: number): Workload[] {
  const pushed = new Map<string, SyntheticBlob>();
  const blobs = new Map<number, SyntheticBlob>();
  const label = formatSize(size);
  return [
    {
      key: `big-push-${label.replace(' ', '')}`,
      title: `push ${label} (streamed), peak RSS`,
      group: 'big',
      unit: 'MB/s',
      blobBytes: size,
      async run(target, ctx) {
        let blob = blobs.get(ctx.repeat);
        if (!blob) {
          blob = makeBlob(size);
          blobs.set(ctx.repeat, blob);
        }
        const one = blob;
        const rss = new RssSampler(target.pid);
        const m = await measure([target.pid], () => pushBlob(ctx.agent, target.url, 'bench/big', one, 'streamed', 0));
        pushed.set(target.id, one);
        return transferMeasurement(m, size, { peakRssBytes: rss.stop() });
      },
    },
    {
      key: `big-pull-${label.replace(' ', '')}`,
      title: `pull ${label} (curl), peak RSS`,
      group: 'big',
      unit: 'MB/s',
      blobBytes: size,
      async run(target, _ctx) {
        const blob = pushed.get(target.id);
        if (!blob) throw new Error('the big push did not succeed on this target');
        const rss = new RssSampler(target.pid);
        // curl rather than the Node client: one Node stream tops out near the server's own pace here.
        const m = await measure([target.pid], () => curlPull(`${target.url}/v2/bench/big/blobs/${blob.digest}`, blob.size));
        return transferMeasurement(m, size, { peakRssBytes: rss.stop() });
      },
    },
  ];
}
