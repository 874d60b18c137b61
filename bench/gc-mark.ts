// Issue 12's "full mark pass over 100,000 blobs": fills a metadata store (embedded, or Redis) through
// its own API with images whose blobs are tiny objects written straight into filesystem storage, a
// share of them orphans (linked, referenced by nothing), then times a GC process that queues every
// stored blob and judges them all, sampling its resident memory.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { parseConfig, resolvedPaths, type BerthConfigInput } from '../server/config.js';
import { blobKey } from '../server/registry/keys.js';
import { parseDigest } from '../server/registry/references.js';
import { createMetadataStore } from '../storage-drivers/metadata/factory.js';
import type { ManifestRecord, MetadataStore } from '../storage-drivers/metadata/types.js';
import { startRedisServer } from '../test/helpers/redis-server.js';
import { blob, imageManifest, OCI_MANIFEST, type Blob } from '../test/helpers/oci.js';
import { pool } from './client.js';
import type { MarkChildResult } from './gc-mark-child.js';

const CHILD = fileURLToPath(new URL('./gc-mark-child.js', import.meta.url));
const LAYERS_PER_IMAGE = 9;
const REPOS = 20;
/** Share of the stored blobs that nothing references (what the pass deletes). */
const ORPHAN_SHARE = 0.12;
const FILL_CONCURRENCY = 64;

export type MarkStore = 'embedded' | 'redis';

export interface MarkFigures {
  store: MarkStore;
  storedBlobs: number;
  manifests: number;
  orphans: number;
  fillSeconds: number;
  queueSeconds: number;
  passSeconds: number;
  passes: number;
  itemsPerSecond: number;
  blobsDeleted: number;
  errors: number;
  peakRssMiB: number;
  /** The anonymous part of the peak (heap, stacks), without mapped files. */
  peakAnonMiB: number;
  /** Redis only: used_memory after the fill. */
  redisMiB?: number;
}

interface Layout {
  manifests: number;
  orphans: number;
}

/** `total` stored objects: images of a config and LAYERS_PER_IMAGE layers, their manifests, and the orphans. */
function layout(total: number): Layout {
  const perImage = LAYERS_PER_IMAGE + 2;
  const manifests = Math.floor((total * (1 - ORPHAN_SHARE)) / perImage);
  return { manifests, orphans: total - manifests * perImage };
}

async function storeObject(storageRoot: string, b: Blob): Promise<void> {
  const file = join(storageRoot, blobKey(parseDigest(b.digest)));
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, b.data);
}

async function fill(store: MetadataStore, storageRoot: string, plan: Layout): Promise<void> {
  const repoOf = (i: number) => `mark/r${i % REPOS}`;
  await pool(
    Array.from({ length: plan.manifests }, (_, i) => i),
    FILL_CONCURRENCY,
    async (i) => {
      const repo = repoOf(i);
      const config = blob(`{"bench":"gc-mark","image":${i}}`);
      const layers = Array.from({ length: LAYERS_PER_IMAGE }, (_, j) => blob(`gc-mark layer ${i}.${j}\n`));
      const manifest = imageManifest(config, layers);
      for (const b of [config, ...layers, manifest]) await storeObject(storageRoot, b);
      for (const b of [config, ...layers]) await store.linkBlob(repo, { digest: b.digest, size: b.size });
      const record: ManifestRecord = {
        digest: manifest.digest,
        mediaType: OCI_MANIFEST,
        size: manifest.size,
        references: [config, ...layers].map((b) => b.digest),
        createdAt: Date.now(),
      };
      await store.putManifest(repo, record, [`v${i}`]);
    },
  );
  await pool(
    Array.from({ length: plan.orphans }, (_, i) => i),
    FILL_CONCURRENCY,
    async (i) => {
      const b = blob(`gc-mark orphan ${i}\n`);
      await storeObject(storageRoot, b);
      await store.linkBlob(repoOf(i), { digest: b.digest, size: b.size });
    },
  );
  await store.gc.markComplete('filled by the benchmark');
}

/** Peak resident memory of a process, in all (VmRSS) and its anonymous part (RssAnon: not mapped files such as lmdb's). */
class MemorySampler {
  rss = 0;
  anon = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), 50);
  }
  private sample(): void {
    let status: string;
    try {
      status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    } catch {
      return; // gone; the peaks so far stand
    }
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    this.rss = Math.max(this.rss, kib('VmRSS'));
    this.anon = Math.max(this.anon, kib('RssAnon'));
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

async function runChild(configFile: string): Promise<{ result: MarkChildResult; peakRss: number; peakAnon: number }> {
  const child = spawn(process.execPath, [CHILD, configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const memory = new MemorySampler(child.pid as number);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  const [code] = (await once(child, 'exit')) as [number | null];
  memory.stop();
  if (code !== 0) throw new Error(`the GC process exited with ${code}: ${stderr}`);
  const last = lines[lines.length - 1];
  if (!last) throw new Error(`the GC process printed nothing: ${stderr}`);
  return { result: JSON.parse(last) as MarkChildResult, peakRss: memory.rss, peakAnon: memory.anon };
}

/** Fills a store with `total` stored blobs in `dir` and measures the full pass over them. */
export async function measureFullMark(store: MarkStore, total: number, dir: string): Promise<MarkFigures> {
  const redis = store === 'redis' ? await startRedisServer() : undefined;
  try {
    const input: BerthConfigInput = {
      dataDir: dir,
      log: { level: 'silent' },
      metadata: redis ? { store: 'redis', redis: { url: redis.url, keyPrefix: 'mark:' } } : { store: 'embedded' },
      gc: { enabled: false, delaySeconds: 0, quarantineSeconds: 0, batch: 1000 },
    };
    const config = parseConfig(input);
    const paths = resolvedPaths(config);
    const plan = layout(total);
    const started = performance.now();
    const metadata = await createMetadataStore(config.metadata, paths);
    try {
      await fill(metadata, paths.storageRoot, plan);
    } finally {
      await metadata.close();
    }
    const fillSeconds = (performance.now() - started) / 1000;
    let redisMiB: number | undefined;
    if (redis) {
      const client = new Redis(redis.url);
      const info = await client.info('memory');
      await client.quit();
      redisMiB = Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0) / 1024 / 1024;
    }
    const configFile = join(dir, 'gc-mark.json');
    await writeFile(configFile, JSON.stringify(input));
    const { result, peakRss, peakAnon } = await runChild(configFile);
    return {
      store,
      storedBlobs: result.queued,
      manifests: plan.manifests,
      orphans: plan.orphans,
      fillSeconds,
      queueSeconds: result.queueMs / 1000,
      passSeconds: result.passMs / 1000,
      passes: result.passes,
      itemsPerSecond: result.examined / (result.passMs / 1000),
      blobsDeleted: result.blobsDeleted,
      errors: result.errors,
      peakRssMiB: peakRss / 1024 / 1024,
      peakAnonMiB: peakAnon / 1024 / 1024,
      ...(redisMiB === undefined ? {} : { redisMiB }),
    };
  } finally {
    await redis?.stop();
  }
}
