// Issue 18 item 5: registry API reads at scale. tags/list of one repository of 100,000 tags and the
// catalog of 10,000 repositories (embedded and Redis metadata), and manifest GET by tag in a Redis store
// of 1,000,000 tags against a small one. Stores are seeded directly (bench/seed.ts): distribution is
// left out, its filesystem layout costs a directory and a link file per tag and per repository.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { MetadataStore } from '../storage-drivers/metadata/types.js';
import { freePort } from '../test/helpers/berth-process.js';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';
import { imageConfig, imageManifest, OCI_MANIFEST } from './blobs.js';
import { newAgent, pool, pushSmall, putManifest } from './client.js';
import type { GcFigures, GcWorkload } from './gc.js';
import { digestOf, OCI_MANIFEST_TYPE, seedStore } from './seed.js';
import { berthBase, launchBerth } from './targets.js';
import { runWrk } from './wrk.js';

const BIG = 'scale/big';
const BIG_TAGS = 100_000;
const REPOSITORIES = 10_000;
/** Tags per manifest when seeding: one putManifest call links them all. */
const TAGS_PER_MANIFEST = 100;
const HUGE_REPOSITORIES = 1_000;
const HUGE_TAGS = 1_000_000;
const SMALL_REPOSITORIES = 10;
/** Few connections: the machine is shared, and a page's latency matters more than saturation here. */
const CONNECTIONS = 4;

type Store = 'embedded' | 'redis';

const repoName = (i: number) => `scale/r-${String(i).padStart(5, '0')}`;
const tagName = (i: number) => `t-${String(i).padStart(7, '0')}`;

/** `tags` tags in `repo`, TAGS_PER_MANIFEST to a manifest. */
async function seedTags(store: MetadataStore, repo: string, tags: number, concurrency: number): Promise<void> {
  const manifests = Array.from({ length: Math.ceil(tags / TAGS_PER_MANIFEST) }, (_, m) => m);
  await pool(manifests, concurrency, async (m) => {
    const first = m * TAGS_PER_MANIFEST;
    const names = Array.from({ length: Math.min(TAGS_PER_MANIFEST, tags - first) }, (_, k) => tagName(first + k));
    await store.putManifest(repo, { digest: digestOf(`${repo} ${m}`), mediaType: OCI_MANIFEST_TYPE, size: 500, references: [], createdAt: Date.now() }, names);
  });
}

/** `seeding`: Redis answers the seed's queue of 100-tag scripts later than a served request's 2 s bound. */
function berthConfig(dir: string, port: number, store: Store, redis: RedisServer | undefined, seeding = false): Record<string, unknown> {
  const timeout = seeding ? { commandTimeoutMs: 60_000 } : {};
  return {
    ...berthBase(dir, port),
    storage: { driver: 'filesystem' },
    metadata: store === 'redis' && redis ? { store: 'redis', redis: { url: redis.url, keyPrefix: 'scale:', ...timeout } } : { store: 'embedded' },
    gc: { enabled: false },
  };
}

/** Requests per second and p50 / p99 ms of GET `path`, as one figure. */
async function rate(url: string, path: string, seconds: number, scratch: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await runWrk({ url: `${url}${path}`, headers, connections: CONNECTIONS, durationSeconds: seconds, timeoutSeconds: 30 }, scratch);
  if (r.errors > 0 || r.requests === 0) throw new Error(`GET ${path}: ${r.errors} errors in ${r.requests} requests`);
  return `${Math.round(r.requestsPerSecond)} req/s, ${r.p50Ms.toFixed(1)} / ${r.p99Ms.toFixed(1)} ms`;
}

async function getJson(url: string): Promise<{ body: Record<string, unknown>; link: string | null }> {
  const res = await fetch(url);
  const body = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return { body, link: res.headers.get('link') };
}

async function redisMemory(redis: RedisServer): Promise<string> {
  const { stdout } = await promisify(execFile)('redis-cli', ['-p', String(redis.port), 'info', 'memory']);
  return /used_memory_human:(\S+)/.exec(stdout)?.[1] ?? 'unknown';
}

async function withBerth<T>(
  scratch: string,
  name: string,
  store: Store,
  fill: (store: MetadataStore) => Promise<void>,
  measure: (url: string, dir: string, redis: RedisServer | undefined, seedSeconds: number) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(scratch, `${name}-`));
  const redis = store === 'redis' ? await startRedisServer() : undefined;
  try {
    await mkdir(join(dir, 'data'), { recursive: true });
    const seedSeconds = await seedStore(berthConfig(dir, 0, store, redis, true), fill);
    const port = await freePort();
    const berth = await launchBerth(dir, berthConfig(dir, port, store, redis), port);
    try {
      return await measure(berth.url, dir, redis, seedSeconds);
    } finally {
      await berth.stop();
    }
  } finally {
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function listsWorkload(store: Store, quick: boolean): GcWorkload {
  const seconds = quick ? 1 : 4;
  return {
    key: `scale-lists-${store}`,
    title: `tags/list of a ${BIG_TAGS.toLocaleString('en-US')}-tag repository and /v2/_catalog of ${REPOSITORIES.toLocaleString('en-US')} repositories, ${store} metadata, ${CONNECTIONS} connections (req/s, p50 / p99 ms)`,
    async run(scratch, log) {
      const fill = async (s: MetadataStore) => {
        await seedTags(s, BIG, BIG_TAGS, 50);
        await pool(
          Array.from({ length: REPOSITORIES - 1 }, (_, i) => i),
          500,
          (i) => seedTags(s, repoName(i), 1, 1),
        );
      };
      return withBerth(scratch, `scale-lists-${store}`, store, fill, async (url, dir, _redis, seedSeconds) => {
        log(`scale-lists ${store}: seeded in ${seedSeconds.toFixed(1)} s`);
        const figures: GcFigures = { 'seed s': Number(seedSeconds.toFixed(1)) };
        // The checks: paging answers full pages and a next link; the unpaged list holds every tag.
        const first = await getJson(`${url}/v2/${BIG}/tags/list?n=1000`);
        const all = await getJson(`${url}/v2/${BIG}/tags/list`);
        const catalogFirst = await getJson(`${url}/v2/_catalog?n=1000`);
        const ok =
          (first.body.tags as string[]).length === 1000 &&
          first.link !== null &&
          (all.body.tags as string[]).length === BIG_TAGS &&
          (catalogFirst.body.repositories as string[]).length === 1000;
        figures['full tags/list bytes'] = JSON.stringify(all.body).length;
        const middle = encodeURIComponent(tagName(BIG_TAGS / 2));
        figures['tags n=1000, first page'] = await rate(url, `/v2/${BIG}/tags/list?n=1000`, seconds, dir);
        figures['tags n=1000, middle (last)'] = await rate(url, `/v2/${BIG}/tags/list?n=1000&last=${middle}`, seconds, dir);
        figures['tags, full list (no n)'] = await rate(url, `/v2/${BIG}/tags/list`, seconds, dir);
        figures['catalog n=1000, first page'] = await rate(url, '/v2/_catalog?n=1000', seconds, dir);
        figures['catalog n=1000, middle (last)'] = await rate(url, `/v2/_catalog?n=1000&last=${encodeURIComponent(repoName(REPOSITORIES / 2))}`, seconds, dir);
        log(`scale-lists ${store}: ${JSON.stringify(figures)}`);
        return { ok, figures };
      });
    },
  };
}

function manifestWorkload(quick: boolean): GcWorkload {
  const seconds = quick ? 1 : 5;
  const one = async (repos: number, tags: number, scratch: string, log: (line: string) => void) => {
    const fill = async (s: MetadataStore) => {
      await pool(
        Array.from({ length: repos }, (_, i) => i),
        16,
        (i) => seedTags(s, repoName(i), tags / repos, 2),
      );
    };
    return withBerth(scratch, `scale-manifest-${tags}`, 'redis', fill, async (url, dir, redis, seedSeconds) => {
      log(`scale-manifest ${tags} tags: seeded in ${seedSeconds.toFixed(1)} s`);
      // One real image (its bytes in storage) in a seeded repository, pulled by tag.
      const repo = repoName(Math.floor(repos / 2));
      const agent = newAgent();
      const config = imageConfig('scale');
      const manifest = imageManifest(config, []);
      await pushSmall(agent, url, repo, config);
      await putManifest(agent, url, repo, 'hot', manifest);
      agent.destroy();
      const memory = redis ? await redisMemory(redis) : 'n/a';
      const figure = await rate(url, `/v2/${repo}/manifests/hot`, seconds, dir, { Accept: OCI_MANIFEST });
      return { seedSeconds, memory, figure };
    });
  };
  return {
    key: 'scale-manifest-redis',
    title: `manifest GET by tag, Redis metadata of ${HUGE_TAGS.toLocaleString('en-US')} tags in ${HUGE_REPOSITORIES.toLocaleString('en-US')} repositories vs ${(HUGE_TAGS / 1000).toLocaleString('en-US')} tags in ${SMALL_REPOSITORIES}, ${CONNECTIONS} connections`,
    async run(scratch, log) {
      const small = await one(SMALL_REPOSITORIES, HUGE_TAGS / 1000, scratch, log);
      const huge = await one(HUGE_REPOSITORIES, HUGE_TAGS, scratch, log);
      const figures: GcFigures = {
        'small: manifest GET': small.figure,
        'small: Redis used_memory': small.memory,
        '1M tags: seed s': Number(huge.seedSeconds.toFixed(1)),
        '1M tags: manifest GET': huge.figure,
        '1M tags: Redis used_memory': huge.memory,
      };
      log(`scale-manifest: ${JSON.stringify(figures)}`);
      return { ok: true, figures };
    },
  };
}

export function scaleWorkloads(quick: boolean): GcWorkload[] {
  return [listsWorkload('embedded', quick), listsWorkload('redis', quick), manifestWorkload(quick)];
}
