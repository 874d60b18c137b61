// A second process for the fill tests: BlobFills over the same filesystem root and Redis as the test,
// serving `count` requests for one blob from an HTTP source: prints `joined [<from>...]` once every
// request is being served, then one JSON line of what each request received. Run as `node fill-peer.js '<json FillPeerJob>'`.
import { createHash } from 'node:crypto';
import { get } from 'node:http';
import { Readable } from 'node:stream';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import { BlobFills, type OpenFillSource } from '../../server/registry/proxy/fills.js';
import { parseDigest } from '../../server/registry/references.js';

export interface FillPeerJob {
  root: string;
  redisUrl: string;
  keyPrefix: string;
  digest: string;
  size: number;
  sourceUrl: string;
  count: number;
  chunkBytes: number;
}

export interface FillPeerResult {
  digest?: string;
  bytes: number;
  error?: string;
}

/** A GET of `url` as a fill source. */
export function httpSource(url: string): OpenFillSource {
  return (signal) =>
    new Promise((resolve, reject) => {
      const request = get(url, { signal }, (response) => {
        if (response.statusCode !== 200) {
          response.resume();
          reject(new Error(`source answered ${response.statusCode}`));
          return;
        }
        resolve({ size: Number(response.headers['content-length']), stream: response });
      });
      request.on('error', reject);
    });
}

export async function drainHashing(stream: Readable): Promise<FillPeerResult> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const piece of stream) {
      hash.update(piece as Buffer);
      bytes += (piece as Buffer).length;
    }
    return { digest: `sha256:${hash.digest('hex')}`, bytes };
  } catch (err) {
    return { bytes, error: (err as Error).message };
  }
}

async function main(job: FillPeerJob): Promise<void> {
  const driver = new FilesystemDriver({ root: job.root });
  const metadata = new RedisStore(redisConfigSchema.parse({ url: job.redisUrl, keyPrefix: job.keyPrefix }));
  if (!(await metadata.waitUntilReady(5000))) throw new Error('redis did not become ready');
  const fills = new BlobFills(driver, metadata, { chunkBytes: job.chunkBytes, pollMs: { min: 5, max: 50 } });
  const digest = parseDigest(job.digest);
  const open = httpSource(job.sourceUrl);
  const served = await Promise.all(Array.from({ length: job.count }, () => fills.serve(digest, job.size, open)));
  // The test holds its upstream until every request here has joined, so none of them can find the blob committed.
  process.stdout.write(`joined ${JSON.stringify(served.map((s) => s.from))}\n`);
  const results = await Promise.all(served.map((s) => drainHashing(s.stream)));
  process.stdout.write(`${JSON.stringify(results)}\n`);
  await metadata.close();
  await driver.close();
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  main(JSON.parse(process.argv[2] ?? '{}') as FillPeerJob).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
