// Issue 15's fan-out row: 200 clients pull one image at once, each verifying every blob's sha256, from
// Berth on S3 (s3rver) + Redis with two processes (shared reads on, then off), and from distribution 2.8
// on its filesystem (its S3 driver cannot upload to s3rver). S3 GETs are counted at a proxy in front of s3rver; server CPU from /proc.
import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../test/helpers/berth-process.js';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';
import { startS3rver, type S3rverHandle } from '../test/helpers/s3rver.js';
import { imageConfig, imageManifest, makeBlob, OCI_MANIFEST, type SmallBlob, type SyntheticBlob } from './blobs.js';
import { newAgent, pushBlob, pushSmall, putManifest } from './client.js';
import { startCountingProxy, type CountingProxy } from './counting-proxy.js';
import { measure } from './proc.js';
import { berthBase, DISTRIBUTION_BINARY, distributionAvailable, launchBerth, startDistribution } from './targets.js';
import { MiB, percentile } from './workloads.js';
import { S3_DEFAULT_PART_BYTES } from '../storage-drivers/blob/s3-config.js';

export type FanoutCaseId = 'berth-shared' | 'berth-unshared' | 'distribution' | 'berth-proxy' | 'distribution-proxy';

export interface FanoutPlan {
  clients: number;
  layerSizes: number[];
}

export const FANOUT_FULL: FanoutPlan = { clients: 200, layerSizes: [64 * MiB, 8 * MiB, 512 * 1024] };
export const FANOUT_QUICK: FanoutPlan = { clients: 200, layerSizes: [8 * MiB, 2 * MiB, 256 * 1024] };

export interface BlobReads {
  what: string;
  bytes: number;
  /** GETs of this object's key that reached the S3 server during the pull phase (absent: no S3). */
  s3Gets?: number;
  /** Cold row only: GETs of this blob that reached the upstream registry during the pull phase. */
  upstreamGets?: number;
}

export interface FanoutCase {
  id: FanoutCaseId;
  label: string;
  processes: number;
  ok: boolean;
  problems: string[];
  wallSeconds?: number;
  /** One client's whole pull: manifest, then every blob, hashed. */
  p50Ms?: number;
  p99Ms?: number;
  serverCpuSeconds?: number;
  clientCpuSeconds?: number;
  blobs?: BlobReads[];
  /** Every request the S3 server saw during the pull phase, by method. */
  s3Requests?: Record<string, number>;
  /** Cold row only: the S3 requests as `METHOD area` (blob data, fill chunks, fill state, journal …). */
  s3RequestAreas?: Record<string, number>;
  /** Cold row only: MiB of S3 response bodies by `METHOD area` (GETs: what the cache read from S3). */
  s3MiBByArea?: Record<string, number>;
  /** Cold row only: MiB of response bodies the upstream sent the cache. */
  upstreamMiB?: number;
  /** Cold row only: every request the upstream saw during the pull phase, as `METHOD kind`. */
  upstreamRequests?: Record<string, number>;
  /** Cold row only: CPU of the upstream registry during the pull phase (not in serverCpuSeconds). */
  upstreamCpuSeconds?: number;
  error?: string;
}

export interface FanoutRow {
  key: string;
  title: string;
  ok: boolean;
  clients: number;
  /** The cold row: pulls through a pull-through cache with an empty cache, upstream requests counted. */
  cold?: boolean;
  cases: FanoutCase[];
  error?: string;
}

export interface FanoutWorkload {
  key: string;
  title: string;
  run(scratch: string, log: (line: string) => void): Promise<FanoutRow>;
}

const REPO = 'bench/fanout-s3';
const TAG = 'latest';
const REQUEST_TIMEOUT_MS = 300_000;

export interface Image {
  layers: SyntheticBlob[];
  config: SmallBlob;
  manifest: SmallBlob;
}

export interface Running {
  urls: string[];
  pids: number[];
  stop(): Promise<void>;
}

/** GET url, hashing the body as it streams; resolves with the digest and length it saw. */
function hashedGet(agent: Agent, url: string, accept?: string): Promise<{ status: number; digest: string; bytes: number; body?: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, timeout: REQUEST_TIMEOUT_MS, headers: accept ? { accept } : {} });
    req.once('timeout', () => req.destroy(new Error(`no progress for ${REQUEST_TIMEOUT_MS} ms`)));
    // Which request failed matters when 200 clients fail at once: name it.
    const fail = (err: Error) => reject(new Error(`GET ${url}: ${err.message}`));
    req.once('error', fail);
    req.once('response', (res) => {
      const hash = createHash('sha256');
      const keep: Buffer[] | undefined = accept ? [] : undefined;
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        keep?.push(chunk);
      });
      res.once('error', fail);
      res.once('close', () => {
        if (!res.complete) fail(new Error('the connection closed mid-response'));
      });
      res.once('end', () =>
        resolve({ status: res.statusCode ?? 0, digest: `sha256:${hash.digest('hex')}`, bytes, ...(keep ? { body: Buffer.concat(keep) } : {}) }),
      );
    });
    req.end();
  });
}

/** One client: the manifest by tag, then every blob it names, each checked against its digest. */
export async function pullVerified(agent: Agent, base: string, image: Image, problems: string[], repo = REPO): Promise<void> {
  const got = await hashedGet(agent, `${base}/v2/${repo}/manifests/${TAG}`, OCI_MANIFEST);
  if (got.status !== 200 || got.digest !== image.manifest.digest) {
    problems.push(`manifest: HTTP ${got.status}, digest ${got.digest}`);
    return;
  }
  const manifest = JSON.parse((got.body as Buffer).toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  for (const { digest } of [manifest.config, ...manifest.layers]) {
    const blob = await hashedGet(agent, `${base}/v2/${repo}/blobs/${digest}`);
    if (blob.status !== 200 || blob.digest !== digest) problems.push(`blob ${digest}: HTTP ${blob.status}, got ${blob.digest} (${blob.bytes} bytes)`);
  }
}

/** Two Berth processes on one s3rver (through the counting proxy) and one Redis; `extra` is merged into both configs. */
export async function startBerthPair(
  dir: string,
  s3: S3rverHandle,
  proxy: CountingProxy,
  redis: RedisServer,
  shared: boolean,
  extra: Record<string, unknown> = {},
): Promise<Running> {
  const started: Awaited<ReturnType<typeof launchBerth>>[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const own = join(dir, `p${i}`);
      await mkdir(own, { recursive: true });
      const port = await freePort();
      const config = {
        ...berthBase(own, port),
        storage: {
          driver: 's3',
          s3: s3.config({ endpoint: proxy.url, partSizeBytes: S3_DEFAULT_PART_BYTES, maxAttempts: 3 }),
          sharedReads: { enabled: shared, spoolDir: join(own, 'spool') },
        },
        metadata: { store: 'redis', redis: { url: redis.url, keyPrefix: 'fanout:' } },
        ...extra,
      };
      started.push(await launchBerth(own, config, port));
    }
  } catch (err) {
    await Promise.all(started.map((t) => t.stop()));
    throw err;
  }
  return { urls: started.map((t) => t.url), pids: started.map((t) => t.pid), stop: async () => void (await Promise.all(started.map((t) => t.stop()))) };
}

/**
 * distribution 2.8 on its filesystem driver. Its s3-aws driver does start against s3rver (with
 * AWS_CA_BUNDLE cleared), but every blob upload then fails: s3rver answers 501 NotImplemented to a
 * multipart call the driver makes, so there is no image to pull. No S3 reads to count here.
 */
async function startDistributionFs(dir: string): Promise<Running> {
  const target = await startDistribution(dir);
  return { urls: [target.url], pids: [target.pid], stop: () => target.stop() };
}

export function makeImage(plan: FanoutPlan, nonce = 'fanout-s3'): Image {
  const layers = plan.layerSizes.map((size) => makeBlob(size));
  const config = imageConfig(nonce);
  return { layers, config, manifest: imageManifest(config, layers) };
}

/** GETs per object, matched by the digest's hex in the S3 key (both registries key blobs by it). */
export function readsPerBlob(image: Image, counts: Map<string, number>): BlobReads[] {
  const objects = [
    { what: 'manifest', digest: image.manifest.digest, bytes: image.manifest.size },
    { what: 'config', digest: image.config.digest, bytes: image.config.size },
    ...image.layers.map((l, i) => ({ what: `layer ${i + 1}`, digest: l.digest, bytes: l.size })),
  ];
  return objects.map(({ what, digest, bytes }) => {
    const hex = digest.slice('sha256:'.length);
    let s3Gets = 0;
    for (const [key, n] of counts) if (key.startsWith('GET ') && key.includes(hex)) s3Gets += n;
    return { what, bytes, s3Gets };
  });
}

/** A counting proxy's `METHOD path` counts summed per method. */
export function requestsByMethod(counts: Map<string, number>): Record<string, number> {
  const byMethod: Record<string, number> = {};
  for (const [key, n] of counts) {
    const method = key.split(' ')[0] as string;
    byMethod[method] = (byMethod[method] ?? 0) + n;
  }
  return byMethod;
}

const CASES: { id: FanoutCaseId; label: string }[] = [
  { id: 'berth-shared', label: 'Berth, S3 (s3rver) + Redis, 2 processes, sharedReads on' },
  { id: 'berth-unshared', label: 'Berth, S3 (s3rver) + Redis, 2 processes, sharedReads off' },
  { id: 'distribution', label: 'distribution 2.8, FILESYSTEM storage (its S3 driver fails uploads on s3rver), 1 process' },
];

async function runCase(spec: (typeof CASES)[number], plan: FanoutPlan, scratch: string, log: (line: string) => void): Promise<FanoutCase> {
  const processes = spec.id === 'distribution' ? 1 : 2;
  const result: FanoutCase = { id: spec.id, label: spec.label, processes, ok: false, problems: [] };
  if (spec.id === 'distribution' && !distributionAvailable()) {
    result.error = `${DISTRIBUTION_BINARY} is missing`;
    return result;
  }
  const dir = join(scratch, `fanout-${spec.id}`);
  let s3: S3rverHandle | undefined;
  let proxy: CountingProxy | undefined;
  let redis: RedisServer | undefined;
  let running: Running | undefined;
  const pushAgent = newAgent();
  // Bounded to the client count: every client holds its own connection, all at once.
  const agent = new Agent({ keepAlive: true, maxSockets: plan.clients, maxFreeSockets: plan.clients });
  try {
    s3 = await startS3rver({ bucket: 'fanout' });
    proxy = await startCountingProxy(s3.endpoint);
    if (spec.id === 'distribution') running = await startDistributionFs(dir);
    else {
      redis = await startRedisServer();
      running = await startBerthPair(dir, s3, proxy, redis, spec.id === 'berth-shared');
    }
    const image = makeImage(plan);
    const first = running.urls[0] as string;
    await pushSmall(pushAgent, first, REPO, image.config);
    for (const layer of image.layers) await pushBlob(pushAgent, first, REPO, layer, 'monolithic', 0);
    await putManifest(pushAgent, first, REPO, TAG, image.manifest);
    proxy.reset();
    const durations: number[] = [];
    const urls = running.urls;
    const m = await measure(running.pids, () =>
      Promise.all(
        Array.from({ length: plan.clients }, async (_, i) => {
          const start = process.hrtime.bigint();
          try {
            await pullVerified(agent, urls[i % urls.length] as string, image, result.problems);
          } catch (err) {
            result.problems.push(`client ${i}: ${(err as Error).message}`);
          }
          durations.push(Number(process.hrtime.bigint() - start) / 1e6);
        }),
      ),
    );
    durations.sort((a, b) => a - b);
    const byMethod = requestsByMethod(proxy.counts());
    Object.assign(result, {
      wallSeconds: m.wallSeconds,
      p50Ms: percentile(durations, 50),
      p99Ms: percentile(durations, 99),
      serverCpuSeconds: m.serverCpuSeconds,
      clientCpuSeconds: m.clientCpuSeconds,
      ...(spec.id === 'distribution' ? {} : { blobs: readsPerBlob(image, proxy.counts()), s3Requests: byMethod }),
    });
    // Keep the report readable: the first few problems tell the story.
    if (result.problems.length > 10) result.problems.splice(10, result.problems.length - 10, `… and ${result.problems.length - 10} more`);
    result.ok = result.problems.length === 0;
    log(`fanout ${spec.id}: ${m.wallSeconds.toFixed(1)} s wall, ${m.serverCpuSeconds.toFixed(1)} s server CPU, S3 ${JSON.stringify(byMethod)}`);
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    agent.destroy();
    pushAgent.destroy();
    await running?.stop().catch(() => undefined);
    await Promise.all([proxy?.close(), s3?.stop(), redis?.stop()]);
  }
  return result;
}

export function fanoutWorkloads(quick: boolean): FanoutWorkload[] {
  const plan = quick ? FANOUT_QUICK : FANOUT_FULL;
  const sizes = plan.layerSizes.map((s) => (s >= MiB ? `${s / MiB} MiB` : `${s / 1024} KiB`)).join(' + ');
  const key = 'fanout-s3';
  const title = `fan-out on S3: ${plan.clients} clients pull one image (config + ${sizes}) at once, verifying every blob`;
  return [
    {
      key,
      title,
      async run(scratch, log) {
        const cases: FanoutCase[] = [];
        for (const spec of CASES) {
          log(`fanout ${spec.id}: starting`);
          cases.push(await runCase(spec, plan, scratch, log));
        }
        // A missing distribution leaves its case out; any client with wrong bytes fails the row.
        const ok = cases.every((c) => c.ok || (c.id === 'distribution' && c.error?.endsWith('is missing')));
        return { key, title, ok, clients: plan.clients, cases };
      },
    },
  ];
}
