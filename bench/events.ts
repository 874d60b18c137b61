// Issue 14's "a slow endpoint does not delay pushes": the same small images pushed into five Berth
// processes that differ only in their events section — events off, on with no endpoint, one endpoint
// that answers at once, one that answers after a delay, one that is down — alternating between them,
// at one push at a time and at many. Then how far behind each endpoint was left, read from its store.
import type { Agent } from 'node:http';
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig, resolvedPaths } from '../server/config.js';
import { eventsStatus, type EndpointStatus } from '../server/registry/events/operator.js';
import { createMetadataStore } from '../storage-drivers/metadata/factory.js';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';
import { freePort } from '../test/helpers/berth-process.js';
import { imageConfig, imageManifest, makeBlob, type SmallBlob, type SyntheticBlob } from './blobs.js';
import { newAgent, pool, pushBlob, pushSmall, putManifest } from './client.js';
import { refusedUrl, startReceiver, type CountingReceiver } from './events-receivers.js';
import { measure } from './proc.js';
import { berthBase, launchBerth, type Target } from './targets.js';
import { percentile } from './workloads.js';

export type EventsStore = 'embedded' | 'redis';
export type EventsCaseId = 'off' | 'no-endpoint' | 'fast' | 'slow' | 'down';

export interface EventsPlan {
  rounds: number;
  /** Images pushed per case and round, at each concurrency. */
  images: { concurrency: number; count: number }[];
  layerBytes: number;
  layersPerImage: number;
  /** How long the slow endpoint takes to answer each event. */
  slowDelayMs: number;
}

export const EVENTS_FULL: EventsPlan = {
  rounds: 3,
  images: [
    { concurrency: 1, count: 60 },
    { concurrency: 16, count: 240 },
  ],
  layerBytes: 16 * 1024,
  layersPerImage: 2,
  slowDelayMs: 5000,
};

export const EVENTS_QUICK: EventsPlan = {
  ...EVENTS_FULL,
  rounds: 1,
  images: [
    { concurrency: 1, count: 30 },
    { concurrency: 16, count: 160 },
  ],
};

const CASES: { id: EventsCaseId; label: string }[] = [
  { id: 'off', label: 'events off' },
  { id: 'no-endpoint', label: 'events on, no endpoint' },
  { id: 'fast', label: 'one endpoint answering at once' },
  { id: 'slow', label: 'one endpoint answering after {delay}' },
  { id: 'down', label: 'one endpoint down (connection refused)' },
];

const REPOSITORIES = 8;
const WARMUP_IMAGES = 8;
/** How long the fast endpoint may take to catch up once the pushes stop. */
const DRAIN_TIMEOUT_MS = 30_000;

export interface LatencyFigures {
  p50Ms: number;
  p99Ms: number;
}

export interface EventsPhase {
  concurrency: number;
  images: number;
  /** Median over the rounds. */
  imagesPerSecond: number;
  imagesPerSecondRuns: number[];
  /** Pooled over the rounds: the manifest PUT alone, and the whole push (blobs, then the manifest). */
  manifestPut: LatencyFigures;
  push: LatencyFigures;
  serverCpuMsPerImage: number;
}

export interface EventsEnd {
  /** Records in the log (every change counts one; 0 with events off). */
  logged: number;
  endpoint?: Pick<EndpointStatus, 'name' | 'behind' | 'lagSeconds' | 'delivered' | 'failedAttempts' | 'deadLetters' | 'dropped' | 'lastError'>;
  /** What berth_events_queued and berth_events_lag_seconds said when the pushes ended. */
  gauge?: { queued: number; lagSeconds: number };
  /** Requests the endpoint had answered when the pushes ended. */
  received?: number;
  /** Seconds from the end of the pushes until the endpoint had every record (fast endpoint only). */
  drainedSeconds?: number;
}

export interface EventsCase {
  id: EventsCaseId;
  label: string;
  phases: EventsPhase[];
  end?: EventsEnd;
}

export interface EventsRow {
  key: string;
  title: string;
  store: EventsStore;
  ok: boolean;
  problems: string[];
  cases: EventsCase[];
  error?: string;
}

export interface EventsWorkload {
  key: string;
  title: string;
  store: EventsStore;
  run(scratch: string, log: (line: string) => void): Promise<EventsRow>;
}

interface Image {
  layers: SyntheticBlob[];
  config: SmallBlob;
  manifest: SmallBlob;
}

let imageCounter = 0;

function makeImage(plan: EventsPlan): Image {
  const layers = Array.from({ length: plan.layersPerImage }, () => makeBlob(plan.layerBytes));
  const config = imageConfig(`events-${imageCounter++}`);
  return { layers, config, manifest: imageManifest(config, layers) };
}

interface Timings {
  push: number[];
  manifestPut: number[];
}

const msSince = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

/** Pushes one image as clients do: every blob (POST + PUT), then the manifest by tag. */
async function pushImage(agent: Agent, base: string, repo: string, tag: string, image: Image, timings: Timings): Promise<void> {
  const start = process.hrtime.bigint();
  for (const layer of image.layers) await pushBlob(agent, base, repo, layer, 'monolithic', 0);
  await pushSmall(agent, base, repo, image.config);
  const put = process.hrtime.bigint();
  await putManifest(agent, base, repo, tag, image.manifest);
  timings.manifestPut.push(msSince(put));
  timings.push.push(msSince(start));
}

interface Running {
  spec: (typeof CASES)[number];
  /** The configuration the process runs with, to open its store afterwards. */
  input: Record<string, unknown>;
  target: Omit<Target, 'id' | 'setup'>;
  receiver?: CountingReceiver;
  timings: Map<number, Timings & { cpuSeconds: number; runs: number[]; images: number }>;
  end: EventsEnd;
}

function eventsSection(id: EventsCaseId, urls: { fast: string; slow: string; down: string }): Record<string, unknown> {
  if (id === 'off') return { enabled: false };
  if (id === 'no-endpoint') return { enabled: true };
  return { enabled: true, endpoints: [{ name: id, url: urls[id] }] };
}

/** The endpoint gauges from /metrics (the operator's view). */
async function scrapeGauges(url: string, endpoint: string): Promise<{ queued: number; lagSeconds: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) => {
    const match = new RegExp(`^${name}\\{endpoint="${endpoint}"\\} (\\S+)$`, 'm').exec(text);
    return match ? Number(match[1]) : NaN;
  };
  return { queued: read('berth_events_queued'), lagSeconds: read('berth_events_lag_seconds') };
}

function latency(values: number[]): LatencyFigures {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
}

/** What the run must show: events queued for the slow and the down endpoint, never dropped; the fast one caught up. */
function checks(cases: EventsCase[]): string[] {
  const problems: string[] = [];
  const end = (id: EventsCaseId) => cases.find((c) => c.id === id)?.end;
  if ((end('off')?.logged ?? -1) !== 0) problems.push(`events off logged ${end('off')?.logged} records`);
  if ((end('no-endpoint')?.logged ?? 0) === 0) problems.push('events on logged no records');
  const fast = end('fast')?.endpoint;
  if (fast?.behind !== 0) problems.push(`the fast endpoint was left ${fast?.behind} records behind`);
  for (const id of ['slow', 'down'] as const) {
    const e = end(id)?.endpoint;
    if (e === undefined || e.behind === 0) problems.push(`the ${id} endpoint was not behind`);
    if (e !== undefined && e.dropped > 0) problems.push(`the ${id} endpoint lost ${e.dropped} records`);
  }
  return problems;
}

function eventsWorkload(store: EventsStore, plan: EventsPlan): EventsWorkload {
  const storage = store === 'embedded' ? 'filesystem + embedded' : 'filesystem + Redis';
  const key = `events-${store === 'embedded' ? 'fs' : 'redis'}`;
  const title = `small-image pushes with events off, on, and a fast, slow (${plan.slowDelayMs / 1000} s) and down endpoint; ${storage}`;
  return {
    key,
    title,
    store,
    async run(scratch, log) {
      const base = join(scratch, `events-${store}`);
      const fast = await startReceiver(0);
      const slow = await startReceiver(plan.slowDelayMs);
      const urls = { fast: fast.url, slow: slow.url, down: await refusedUrl() };
      let redis: RedisServer | undefined;
      const running: Running[] = [];
      const agent = newAgent();
      try {
        if (store === 'redis') redis = await startRedisServer();
        for (const spec of CASES) {
          const dir = join(base, spec.id);
          await mkdir(dir, { recursive: true });
          const port = await freePort();
          const input: Record<string, unknown> = {
            ...berthBase(dir, port),
            ...(redis ? { metadata: { store: 'redis', redis: { url: redis.url, keyPrefix: `ev-${spec.id}:` } } } : {}),
            events: eventsSection(spec.id, urls),
          };
          const target = await launchBerth(dir, input, port);
          const receiver = spec.id === 'fast' ? fast : spec.id === 'slow' ? slow : undefined;
          running.push({ spec, input, target, timings: new Map(), end: { logged: 0 }, ...(receiver ? { receiver } : {}) });
        }
        log(`events ${store}: ${running.map((r) => `${r.spec.id} pid ${r.target.pid}`).join(', ')}`);
        // Warm-up: JIT, connections, the repositories created; the slow endpoint's backlog starts here.
        for (const r of running) {
          const images = Array.from({ length: WARMUP_IMAGES }, () => makeImage(plan));
          await pool(images, 4, (image, i) =>
            pushImage(agent, r.target.url, `bench/events-${i % REPOSITORIES}`, `warm-${i}`, image, { push: [], manifestPut: [] }),
          );
        }
        let step = 0;
        for (let round = 0; round < plan.rounds; round++) {
          for (const { concurrency, count } of plan.images) {
            // Rotate who goes first, so drift is not charged to one case.
            const shift = step++ % running.length;
            for (const r of [...running.slice(shift), ...running.slice(0, shift)]) {
              const images = Array.from({ length: count }, () => makeImage(plan));
              const t = r.timings.get(concurrency) ?? { push: [], manifestPut: [], cpuSeconds: 0, runs: [], images: 0 };
              r.timings.set(concurrency, t);
              spawnSync('sync', [], { stdio: 'ignore' });
              const m = await measure([r.target.pid], () =>
                pool(images, concurrency, (image, i) =>
                  pushImage(agent, r.target.url, `bench/events-${i % REPOSITORIES}`, `r${round}c${concurrency}-${i}`, image, t),
                ),
              );
              t.cpuSeconds += m.serverCpuSeconds;
              t.images += count;
              t.runs.push(count / m.wallSeconds);
              log(`events ${store} ${r.spec.id} c=${concurrency}: ${(count / m.wallSeconds).toFixed(1)} images/s`);
            }
          }
        }
        const pushesEnded = Date.now();
        for (const r of running) {
          if (r.receiver) r.end.received = r.receiver.answered();
          if (r.spec.id === 'fast' || r.spec.id === 'slow' || r.spec.id === 'down') r.end.gauge = await scrapeGauges(r.target.url, r.spec.id);
        }
        const fastRun = running.find((r) => r.spec.id === 'fast');
        if (fastRun) {
          const deadline = Date.now() + DRAIN_TIMEOUT_MS;
          while (Date.now() < deadline) {
            if ((await scrapeGauges(fastRun.target.url, 'fast')).queued === 0) {
              fastRun.end.drainedSeconds = (Date.now() - pushesEnded) / 1000;
              break;
            }
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        // The store is the truth: stop each process (its claim released), then read what its log and endpoint say.
        for (const r of running) {
          await r.target.stop();
          const config = parseConfig(r.input);
          const metadata = await createMetadataStore(config.metadata, resolvedPaths(config));
          try {
            const names = r.spec.id === 'fast' || r.spec.id === 'slow' || r.spec.id === 'down' ? [r.spec.id] : [];
            const status = await eventsStatus(metadata.events, names, pushesEnded);
            r.end.logged = status.logged;
            const e = status.endpoints.find((s) => s.name === r.spec.id);
            if (e) {
              const { name, behind, lagSeconds, delivered, failedAttempts, deadLetters, dropped, lastError } = e;
              r.end.endpoint = { name, behind, lagSeconds, delivered, failedAttempts, deadLetters, dropped, ...(lastError ? { lastError } : {}) };
            }
          } finally {
            await metadata.close();
          }
          log(`events ${store} ${r.spec.id}: ${JSON.stringify(r.end)}`);
        }
        const cases: EventsCase[] = running.map((r) => ({
          id: r.spec.id,
          label: r.spec.label.replace('{delay}', `${plan.slowDelayMs / 1000} s`),
          phases: plan.images.map(({ concurrency }) => {
            const t = r.timings.get(concurrency) ?? { push: [], manifestPut: [], cpuSeconds: 0, runs: [], images: 0 };
            return {
              concurrency,
              images: t.images,
              imagesPerSecond: median(t.runs),
              imagesPerSecondRuns: t.runs,
              manifestPut: latency(t.manifestPut),
              push: latency(t.push),
              serverCpuMsPerImage: t.images === 0 ? 0 : (t.cpuSeconds * 1000) / t.images,
            };
          }),
          end: r.end,
        }));
        const problems = checks(cases);
        return { key, title, store, ok: problems.length === 0, problems, cases };
      } finally {
        agent.destroy();
        await Promise.all(running.map((r) => r.target.stop().catch(() => undefined)));
        await Promise.all([fast.close(), slow.close(), redis?.stop()]);
      }
    },
  };
}

export function eventsWorkloads(quick: boolean): EventsWorkload[] {
  const plan = quick ? EVENTS_QUICK : EVENTS_FULL;
  return [eventsWorkload('embedded', plan), eventsWorkload('redis', plan)];
}
