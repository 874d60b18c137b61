// Issue 15's cold fan-out row: 200 clients pull one image at once through a pull-through cache whose
// cache is empty. The upstream is a Berth on its filesystem, on loopback, behind a counting proxy, so
// every request it gets is counted at the wire. The caches: Berth on S3 (s3rver, also counted) + Redis
// with two processes and `proxy.upstreams` pointing at the upstream; and distribution 2.8 with
// `proxy.remoteurl` on its filesystem. Server CPU is the caches' (the upstream's is reported apart).
import { Agent } from 'node:http';
import { join } from 'node:path';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';
import { startS3rver, type S3rverHandle } from '../test/helpers/s3rver.js';
import { newAgent, pushBlob, pushSmall, putManifest } from './client.js';
import { startCountingProxy, type CountingProxy } from './counting-proxy.js';
import {
  FANOUT_FULL,
  FANOUT_QUICK,
  makeImage,
  pullVerified,
  readsPerBlob,
  requestsByMethod,
  startBerthPair,
  type FanoutCase,
  type FanoutCaseId,
  type FanoutPlan,
  type FanoutWorkload,
  type Image,
  type Running,
} from './fanout.js';
import { cpuSeconds, measure } from './proc.js';
import { DISTRIBUTION_BINARY, distributionAvailable, startBerthFilesystem, startDistribution, type Target } from './targets.js';
import { MiB, percentile } from './workloads.js';

/** The repository at the upstream; Berth's cache serves it as `up/<it>`, distribution's under its own name. */
const UPSTREAM_REPO = 'bench/fanout-cold';
const NAMESPACE = 'up';
const TAG = 'latest';

interface Upstream {
  target: Target;
  counter: CountingProxy;
  image: Image;
}

const CASES: { id: FanoutCaseId; label: string; repo: string }[] = [
  {
    id: 'berth-proxy',
    label: 'Berth pull-through cache, S3 (s3rver) + Redis, 2 processes, sharedReads on',
    repo: `${NAMESPACE}/${UPSTREAM_REPO}`,
  },
  { id: 'distribution-proxy', label: 'distribution 2.8 pull-through cache (proxy.remoteurl), filesystem storage, 1 process', repo: UPSTREAM_REPO },
];

/** `METHOD path` counts of the upstream, grouped as `METHOD blob`, `METHOD manifest` or `METHOD <path>`. */
function upstreamRequestKinds(counts: Map<string, number>): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const [key, n] of counts) {
    const [method, path = ''] = key.split(' ');
    const kind = path.includes('/blobs/') ? 'blob' : path.includes('/manifests/') ? 'manifest' : path;
    const name = `${method ?? 'GET'} ${kind}`;
    kinds[name] = (kinds[name] ?? 0) + n;
  }
  return kinds;
}

/** What an S3 request was for, from its key (server/registry/keys.ts's layout) under the bucket. */
function s3Area(path: string): string {
  const key = path.split('/').slice(2).join('/');
  if (key === '') return 'bucket';
  if (key.startsWith('blobs/')) return 'blob data';
  if (key.startsWith('fills/')) return key.endsWith('/state') ? 'fill state' : 'fill chunks';
  if (key.startsWith('journal/')) return `journal ${/\/(_blobs|_manifests|_tags)\//.exec(key)?.[1] ?? ''}`.trim();
  return key.split('/')[0] as string;
}

/** S3 requests (or bytes) as `METHOD area`, so the fill's spool traffic shows apart from reads of committed blobs. */
function s3RequestAreas(counts: Map<string, number>, scale = 1): Record<string, number> {
  const areas: Record<string, number> = {};
  for (const [key, n] of counts) {
    const [method, path = ''] = key.split(' ');
    const name = `${method ?? 'GET'} ${s3Area(path)}`;
    areas[name] = (areas[name] ?? 0) + n / scale;
  }
  for (const name of Object.keys(areas)) areas[name] = Math.round((areas[name] as number) * 10) / 10;
  return areas;
}

function totalMiB(bytes: Map<string, number>): number {
  let sum = 0;
  for (const n of bytes.values()) sum += n;
  return Math.round((sum / MiB) * 10) / 10;
}

async function startUpstream(plan: FanoutPlan, scratch: string): Promise<Upstream> {
  const target = await startBerthFilesystem(join(scratch, 'fanout-cold-upstream'));
  let counter: CountingProxy | undefined;
  const agent = newAgent();
  try {
    counter = await startCountingProxy(target.url);
    const image = makeImage(plan, 'fanout-cold');
    // Pushed straight to the upstream: only the caches' requests go through the counter.
    await pushSmall(agent, target.url, UPSTREAM_REPO, image.config);
    for (const layer of image.layers) await pushBlob(agent, target.url, UPSTREAM_REPO, layer, 'monolithic', 0);
    await putManifest(agent, target.url, UPSTREAM_REPO, TAG, image.manifest);
    return { target, counter, image };
  } catch (err) {
    await counter?.close();
    await target.stop();
    throw err;
  } finally {
    agent.destroy();
  }
}

async function runCase(spec: (typeof CASES)[number], plan: FanoutPlan, up: Upstream, scratch: string, log: (line: string) => void): Promise<FanoutCase> {
  const berth = spec.id === 'berth-proxy';
  const result: FanoutCase = { id: spec.id, label: spec.label, processes: berth ? 2 : 1, ok: false, problems: [] };
  if (!berth && !distributionAvailable()) {
    result.error = `${DISTRIBUTION_BINARY} is missing`;
    return result;
  }
  const dir = join(scratch, `fanout-cold-${spec.id}`);
  let s3: S3rverHandle | undefined;
  let s3Counter: CountingProxy | undefined;
  let redis: RedisServer | undefined;
  let running: Running | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: plan.clients, maxFreeSockets: plan.clients });
  try {
    if (berth) {
      s3 = await startS3rver({ bucket: 'fanout-cold' });
      s3Counter = await startCountingProxy(s3.endpoint);
      redis = await startRedisServer();
      // The upstream settings are the defaults (16 requests in flight per process, 30 s timeout).
      const proxy = { upstreams: [{ namespace: NAMESPACE, urls: [up.counter.url] }] };
      running = await startBerthPair(dir, s3, s3Counter, redis, true, { proxy });
    } else {
      const target = await startDistribution(dir, { proxyRemoteUrl: up.counter.url });
      running = { urls: [target.url], pids: [target.pid], stop: () => target.stop() };
    }
    up.counter.reset();
    s3Counter?.reset();
    const upstreamCpu = cpuSeconds(up.target.pid);
    const durations: number[] = [];
    const urls = running.urls;
    const m = await measure(running.pids, () =>
      Promise.all(
        Array.from({ length: plan.clients }, async (_, i) => {
          const start = process.hrtime.bigint();
          try {
            await pullVerified(agent, urls[i % urls.length] as string, up.image, result.problems, spec.repo);
          } catch (err) {
            result.problems.push(`client ${i}: ${(err as Error).message}`);
          }
          durations.push(Number(process.hrtime.bigint() - start) / 1e6);
        }),
      ),
    );
    durations.sort((a, b) => a - b);
    const upstreamGets = readsPerBlob(up.image, up.counter.counts());
    const s3Gets = s3Counter ? readsPerBlob(up.image, s3Counter.counts()) : undefined;
    Object.assign(result, {
      wallSeconds: m.wallSeconds,
      p50Ms: percentile(durations, 50),
      p99Ms: percentile(durations, 99),
      serverCpuSeconds: m.serverCpuSeconds,
      clientCpuSeconds: m.clientCpuSeconds,
      upstreamCpuSeconds: cpuSeconds(up.target.pid) - upstreamCpu,
      blobs: upstreamGets.map((b, i) => ({ what: b.what, bytes: b.bytes, upstreamGets: b.s3Gets, ...(s3Gets ? { s3Gets: s3Gets[i]?.s3Gets ?? 0 } : {}) })),
      upstreamRequests: upstreamRequestKinds(up.counter.counts()),
      upstreamMiB: totalMiB(up.counter.bytes()),
      ...(s3Counter
        ? {
            s3Requests: requestsByMethod(s3Counter.counts()),
            s3RequestAreas: s3RequestAreas(s3Counter.counts()),
            s3MiBByArea: Object.fromEntries(Object.entries(s3RequestAreas(s3Counter.bytes(), MiB)).filter(([, n]) => n > 0)),
          }
        : {}),
    });
    // A failure between the cache and S3 or the upstream explains the clients' failures: the first few.
    for (const [what, counter] of [
      ['S3', s3Counter],
      ['upstream', up.counter],
    ] as const) {
      const failures = counter?.failures() ?? [];
      if (failures.length > 0) result.problems.unshift(`${failures.length} ${what} requests failed at the wire, first: ${failures.slice(0, 3).join('; ')}`);
    }
    // The point of the fills: Berth's cache fetches every blob from the upstream exactly once.
    if (berth) {
      for (const b of result.blobs ?? []) {
        if (b.what !== 'manifest' && b.upstreamGets !== 1) result.problems.push(`${b.what}: ${b.upstreamGets ?? 0} upstream GETs, expected 1`);
      }
    }
    if (result.problems.length > 10) result.problems.splice(10, result.problems.length - 10, `… and ${result.problems.length - 10} more`);
    result.ok = result.problems.length === 0;
    log(
      `fanout-cold ${spec.id}: ${m.wallSeconds.toFixed(1)} s wall, ${m.serverCpuSeconds.toFixed(1)} s server CPU, ` +
        `upstream ${JSON.stringify(result.upstreamRequests)}${s3Counter ? `, S3 ${JSON.stringify(result.s3Requests)}` : ''}`,
    );
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    agent.destroy();
    await running?.stop().catch(() => undefined);
    await Promise.all([s3Counter?.close(), s3?.stop(), redis?.stop()]);
  }
  return result;
}

export function fanoutColdWorkload(quick: boolean): FanoutWorkload {
  const plan = quick ? FANOUT_QUICK : FANOUT_FULL;
  const sizes = plan.layerSizes.map((s) => (s >= MiB ? `${s / MiB} MiB` : `${s / 1024} KiB`)).join(' + ');
  const key = 'fanout-cold';
  const title = `cold fan-out through a pull-through cache: ${plan.clients} clients pull one image (config + ${sizes}) at once, empty cache, verifying every blob`;
  return {
    key,
    title,
    async run(scratch, log) {
      const up = await startUpstream(plan, scratch);
      const cases: FanoutCase[] = [];
      try {
        for (const spec of CASES) {
          log(`fanout-cold ${spec.id}: starting`);
          cases.push(await runCase(spec, plan, up, scratch, log));
        }
      } finally {
        await up.counter.close();
        await up.target.stop();
      }
      const ok = cases.every((c) => c.ok || (c.id === 'distribution-proxy' && c.error?.endsWith('is missing')));
      return { key, title, ok, clients: plan.clients, cold: true, cases };
    },
  };
}
