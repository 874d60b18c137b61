// Issue 13's "a preview on a repository of 30,000 tags is measured": fills a metadata store (embedded,
// or Redis) with one CI repository — builds of 30 branches tagged <branch>-<sha>, and release tags —
// then times `berth retention preview` of it with the worked example's policy in a fresh process and
// reports its peak resident memory.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseConfig, resolvedPaths, type BerthConfigInput } from '../server/config.js';
import { createMetadataStore } from '../storage-drivers/metadata/factory.js';
import type { MetadataStore } from '../storage-drivers/metadata/types.js';
import { startRedisServer } from '../test/helpers/redis-server.js';
import { pool } from './client.js';
import type { GcWorkload } from './gc.js';
import type { PreviewChildResult } from './retention-preview-child.js';

const CHILD = fileURLToPath(new URL('./retention-preview-child.js', import.meta.url));
const REPOSITORY = 'ci/app';
const BRANCHES = 30;
const RELEASE_EVERY = 100;
const DAY = 86_400_000;

/** The worked example of docs/retention.md. */
const CI_POLICY = {
  name: 'ci',
  repositories: ['ci/**'],
  groupBy: '^(?<branch>.+)-[0-9a-f]{7,}$',
  keepLastPushed: 20,
  keepTags: ['/^v\\d+\\.\\d+\\.\\d+$/'],
  keepPulledWithin: '30d',
  maxDeleteFraction: 1,
};

async function fill(store: MetadataStore, tags: number): Promise<void> {
  const now = Date.now();
  await pool(
    Array.from({ length: tags }, (_, i) => i),
    64,
    async (i) => {
      const digest = `sha256:${createHash('sha256').update(`retention bench ${i}`).digest('hex')}`;
      const tag = i % RELEASE_EVERY === 0 ? `v1.${Math.floor(i / RELEASE_EVERY)}.0` : `branch${i % BRANCHES}-${digest.slice(7, 19)}`;
      await store.putManifest(
        REPOSITORY,
        { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 500, references: [], createdAt: now - (tags - i) * 60_000 - DAY },
        [tag],
      );
    },
  );
}

async function runChild(configFile: string): Promise<PreviewChildResult> {
  const child = spawn(process.execPath, [CHILD, configFile, REPOSITORY], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`the preview process exited with ${code}: ${stderr}`);
  const last = lines[lines.length - 1];
  if (!last) throw new Error(`the preview process printed nothing: ${stderr}`);
  return JSON.parse(last) as PreviewChildResult;
}

function previewWorkload(store: 'embedded' | 'redis', tags: number): GcWorkload {
  return {
    key: `retention-preview-${tags / 1000}k-${store}`,
    title: `retention preview of one repository of ${tags.toLocaleString('en-US')} tags, ${store} metadata (CI policy: 20 per branch, releases, pulled in 30 d)`,
    async run(scratch, log) {
      const dir = await mkdtemp(join(scratch, `retention-${store}-`));
      const redis = store === 'redis' ? await startRedisServer() : undefined;
      try {
        const input: BerthConfigInput = {
          dataDir: dir,
          log: { level: 'silent' },
          storage: { driver: 'memory' },
          metadata: redis ? { store: 'redis', redis: { url: redis.url, keyPrefix: 'ret:' } } : { store: 'embedded' },
          gc: { enabled: false },
          retention: { policies: [CI_POLICY] },
        };
        const config = parseConfig(input);
        const started = performance.now();
        const metadata = await createMetadataStore(config.metadata, resolvedPaths(config));
        try {
          await fill(metadata, tags);
        } finally {
          await metadata.close();
        }
        const fillSeconds = (performance.now() - started) / 1000;
        const configFile = join(dir, 'retention.json');
        await writeFile(configFile, JSON.stringify(input));
        const r = await runChild(configFile);
        log(`retention preview ${store}: ${JSON.stringify(r)}`);
        const releases = Math.ceil(tags / RELEASE_EVERY);
        return {
          // Every release and 20 builds of each branch are kept; nothing was pulled.
          ok: r.tags === tags && r.kept === releases + BRANCHES * 20,
          figures: {
            tags: r.tags,
            'would delete / keep': `${r.deleted} / ${r.kept}`,
            'fill s': fillSeconds,
            'preview s': r.previewMs / 1000,
            'tags/s': r.tags / (r.previewMs / 1000),
            'text MiB': r.textBytes / 1024 / 1024,
            'RSS at start MiB': r.startRssMiB,
            'peak RSS MiB': r.peakRssMiB,
          },
        };
      } finally {
        await redis?.stop();
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

export function retentionWorkloads(): GcWorkload[] {
  return [previewWorkload('embedded', 30_000), previewWorkload('redis', 30_000)];
}
