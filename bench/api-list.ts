// Issue 17: the web UI's repository list and a big repository's tag page at scale. Fills a metadata
// store (embedded, or Redis) with 10,000 repositories of two images each and one repository of
// 30,000 tags, starts `berth serve` on it with auth on (a rules file letting one user pull
// everything), and times the management API's list, search, tag pages and one-repository entry.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setUserPassword } from '../auth/users.js';
import { dayOf } from '../storage-drivers/metadata/pull-types.js';
import type { MetadataStore } from '../storage-drivers/metadata/types.js';
import { freePort } from '../test/helpers/berth-process.js';
import { startRedisServer } from '../test/helpers/redis-server.js';
import { launchBrowser } from '../test/helpers/browser.js';
import { pool } from './client.js';
import type { GcFigures, GcWorkload } from './gc.js';
import { digestOf, OCI_MANIFEST_TYPE as MANIFEST, seedStore } from './seed.js';
import { berthBase, launchBerth } from './targets.js';

const REPOSITORIES = 10_000;
const BIG = 'ci/monorepo';
const BIG_TAGS = 30_000;
const USER = 'ui';
const PASSWORD = 'ui-bench-password';
/** Requests per case: the first is left out of the figures (connection set-up, lazy loads). */
const SAMPLES = 30;
/** Page loads per UI case in the browser (the first is left out, like the API samples). */
const UI_SAMPLES = 11;
/** Fresh processes for the cold size sort: each answers it once with an empty summary cache. */
const COLD_STARTS = 5;

/** Two images per repository sharing a base layer (config, base, own layer), and some pulls. */
async function fill(store: MetadataStore): Promise<void> {
  const now = Date.now();
  const repos = Array.from({ length: REPOSITORIES }, (_, i) => `team${i % 100}/service-${String(i).padStart(5, '0')}`);
  // Wide enough that the embedded store's group commit takes hundreds of writes per transaction.
  await pool(repos, 1000, async (repo, i) => {
    const base = { digest: digestOf(`base ${i % 50}`), size: 30_000_000 + (i % 50) * 1000 };
    await store.linkBlob(repo, base);
    for (const [t, tag] of ['latest', 'v1.0.0'].entries()) {
      const config = { digest: digestOf(`config ${repo} ${tag}`), size: 1500 };
      const layer = { digest: digestOf(`layer ${repo} ${tag}`), size: 1000 + ((i * 7919 + t) % 5_000_000) };
      await store.linkBlob(repo, config);
      await store.linkBlob(repo, layer);
      const createdAt = now - ((i * 37) % 1_000_000) * 1000 - t;
      await store.putManifest(
        repo,
        { digest: digestOf(`manifest ${repo} ${tag}`), mediaType: MANIFEST, size: 700, references: [config.digest, base.digest, layer.digest], createdAt },
        [tag],
      );
    }
  });
  const base = { digest: digestOf('big base'), size: 80_000_000 };
  await store.linkBlob(BIG, base);
  await pool(
    Array.from({ length: BIG_TAGS }, (_, i) => i),
    1000,
    async (i) => {
      const digest = digestOf(`big ${i}`);
      await store.putManifest(BIG, { digest, mediaType: MANIFEST, size: 600, references: [base.digest], createdAt: now - (BIG_TAGS - i) * 60_000 }, [
        `build-${digest.slice(7, 19)}`,
      ]);
    },
  );
  // Pull totals for a tenth of the repositories and of the big repository's tags.
  const day = dayOf(now);
  const entries = repos
    .filter((_, i) => i % 10 === 0)
    .map((repo, i) => ({ repo, day, byTag: [{ tag: 'latest', count: 1 + (i % 40), last: now - i * 1000 }], byDigest: [] }));
  const bigTags = (await store.listTagDetails(BIG, { n: BIG_TAGS })).filter((_, i) => i % 10 === 0);
  entries.push({ repo: BIG, day, byTag: bigTags.map((t, i) => ({ tag: t.tag, count: 1 + (i % 90), last: now - i * 1000 })), byDigest: [] });
  await store.pulls.recordPulls({ id: 'api-list-bench', keepDays: 30, now, entries });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** "p50 / p95" in milliseconds. */
function latency(ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  return `${percentile(sorted, 50).toFixed(1)} / ${percentile(sorted, 95).toFixed(1)}`;
}

async function token(url: string, scope?: string): Promise<string> {
  const res = await fetch(`${url}/auth/token?service=berth${scope === undefined ? '' : `&scope=${encodeURIComponent(scope)}`}`, {
    headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` },
  });
  if (res.status !== 200) throw new Error(`token: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

/** One timed GET; the body is read and checked to hold entries. */
async function timed(url: string, bearer: string, check: (body: unknown) => boolean): Promise<number> {
  const started = performance.now();
  const res = await fetch(url, { headers: { authorization: `Bearer ${bearer}` } });
  const body = (await res.json()) as unknown;
  const ms = performance.now() - started;
  if (res.status !== 200 || !check(body)) throw new Error(`GET ${url}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return ms;
}

async function samples(n: number, once: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await once());
  return out.slice(1);
}

/**
 * What a person waits for in the web UI: chromium signs in through the UI's form, then each sample
 * loads the page afresh (scripts, token, API calls) until its table is drawn.
 */
async function pageLoads(url: string): Promise<GcFigures> {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.goto(`${url}/ui/#/signin`);
    await page.getByLabel('User name').fill(USER);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#repositories tbody tr').first().waitFor();
    const load = async (hash: string, drawn: string[]): Promise<number> => {
      await page.goto('about:blank');
      const started = performance.now();
      await page.goto(`${url}/ui/${hash}`);
      for (const selector of drawn) await page.locator(selector).first().waitFor();
      return performance.now() - started;
    };
    return {
      'UI: repository list': latency(await samples(UI_SAMPLES, () => load('#/', ['#repositories tbody tr:nth-child(50)']))),
      'UI: 30k-tag repository page': latency(
        await samples(UI_SAMPLES, () => load(`#/repo?name=${BIG}`, ['#tags tbody tr:nth-child(50)', 'section[aria-label="Summary"] dl', 'figure.chart-box'])),
      ),
    };
  } finally {
    await browser.close();
  }
}

const listed = (count: number) => (body: unknown) => (body as { repositories?: unknown[] }).repositories?.length === count;
const tagged = (count: number) => (body: unknown) => (body as { tags?: unknown[] }).tags?.length === count;

function apiListWorkload(store: 'embedded' | 'redis'): GcWorkload {
  return {
    key: `api-list-${store}`,
    title: `management API, ${REPOSITORIES.toLocaleString('en-US')} repositories and one of ${BIG_TAGS.toLocaleString('en-US')} tags, ${store} metadata, auth on (p50 / p95 ms)`,
    async run(scratch, log) {
      const dir = await mkdtemp(join(scratch, `api-list-${store}-`));
      const redis = store === 'redis' ? await startRedisServer() : undefined;
      try {
        const rulesFile = join(dir, 'rules.yaml');
        await writeFile(rulesFile, `rules:\n  - repository: '**'\n    users: [${USER}]\n    allow: [pull]\n`);
        const htpasswdFile = join(dir, 'htpasswd');
        await setUserPassword(htpasswdFile, USER, PASSWORD, 4);
        const config = (port: number) => ({
          ...berthBase(dir, port),
          storage: { driver: 'filesystem' },
          metadata: redis ? { store: 'redis', redis: { url: redis.url, keyPrefix: 'apilist:' } } : { store: 'embedded' },
          gc: { enabled: false },
          auth: { enabled: true, rulesFile, htpasswdFile },
        });
        await mkdir(join(dir, 'data'), { recursive: true });
        const fillSeconds = await seedStore(config(0), fill);
        log(`api-list ${store}: filled in ${fillSeconds.toFixed(1)} s`);

        const cold: number[] = [];
        for (let i = 0; i < COLD_STARTS; i++) {
          const port = await freePort();
          const berth = await launchBerth(dir, config(port), port, { readyPath: '/readyz' });
          try {
            const bearer = await token(berth.url);
            cold.push(await timed(`${berth.url}/api/v1/repositories?sort=size&order=desc`, bearer, listed(100)));
          } finally {
            await berth.stop();
          }
        }
        const port = await freePort();
        const berth = await launchBerth(dir, config(port), port, { readyPath: '/readyz' });
        try {
          const url = berth.url;
          const bearer = await token(url);
          const big = await token(url, `repository:${BIG}:pull`);
          const one = await token(url, 'repository:team7/service-00007:pull');
          const figures: GcFigures = {
            'fill s': fillSeconds,
            'list by name': latency(await samples(SAMPLES, () => timed(`${url}/api/v1/repositories`, bearer, listed(100)))),
            'list by name, page 50': latency(
              await samples(SAMPLES, () => timed(`${url}/api/v1/repositories?n=100&last=team53%2Fservice-04853`, bearer, listed(100))),
            ),
            'size sort, cold': latency(cold),
          };
          figures['size sort, warm'] = latency(await samples(SAMPLES, () => timed(`${url}/api/v1/repositories?sort=size&order=desc`, bearer, listed(100))));
          figures['search q=service-012'] = latency(await samples(SAMPLES, () => timed(`${url}/api/v1/repositories?q=service-012`, bearer, listed(100))));
          figures['30k tags, first page'] = latency(await samples(SAMPLES, () => timed(`${url}/api/v1/repositories/${BIG}/tags`, big, tagged(100))));
          figures['30k tags, pushedAt desc'] = latency(
            await samples(SAMPLES, () => timed(`${url}/api/v1/repositories/${BIG}/tags?sort=pushedAt&order=desc`, big, tagged(100))),
          );
          figures['one repository'] = latency(
            await samples(SAMPLES, () => timed(`${url}/api/v1/repositories/team7/service-00007`, one, (b) => (b as { tagCount?: number }).tagCount === 2)),
          );
          figures['30k-tag repository'] = latency(
            await samples(10, () => timed(`${url}/api/v1/repositories/${BIG}`, big, (b) => (b as { tagCount?: number }).tagCount === BIG_TAGS)),
          );
          Object.assign(figures, await pageLoads(url));
          log(`api-list ${store}: ${JSON.stringify(figures)}`);
          return { ok: true, figures };
        } finally {
          await berth.stop();
        }
      } finally {
        await redis?.stop();
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

export function apiListWorkloads(): GcWorkload[] {
  return [apiListWorkload('embedded'), apiListWorkload('redis')];
}
