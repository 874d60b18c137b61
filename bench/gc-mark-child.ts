// The process the 100,000-blob measurement runs GC in (spawned by gc-mark.ts, which samples its RSS):
// opens the storage stack as `berth gc --full` does, queues every stored blob, then runs passes of
// `gc.batch` items until nothing is due, and prints one JSON line of what it took.
import { readFileSync } from 'node:fs';
import { parseConfig } from '../server/config.js';
import { gcCollector } from '../server/registry/gc/setup.js';
import { queueStored } from '../server/registry/gc/full-mark.js';
import { buildStorageStack } from '../server/storage-stack.js';

export interface MarkChildResult {
  queued: number;
  queueMs: number;
  passes: number;
  passMs: number;
  examined: number;
  kept: number;
  blobsDeleted: number;
  bytesFreed: number;
  linksRemoved: number;
  errors: number;
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: gc-mark-child.js CONFIG.json');
  const config = parseConfig(JSON.parse(readFileSync(file, 'utf8')));
  const stack = await buildStorageStack(config);
  try {
    const collector = gcCollector(stack.driver, stack.metadata, config, Date.now);
    let started = performance.now();
    const { blobs } = await queueStored(stack.driver, stack.metadata, { manifests: false });
    const queueMs = performance.now() - started;
    const result: MarkChildResult = {
      queued: blobs,
      queueMs,
      passes: 0,
      passMs: 0,
      examined: 0,
      kept: 0,
      blobsDeleted: 0,
      bytesFreed: 0,
      linksRemoved: 0,
      errors: 0,
    };
    started = performance.now();
    for (;;) {
      const s = await collector.pass({ limit: config.gc.batch });
      result.passes++;
      result.examined += s.examined;
      result.kept += s.kept;
      result.blobsDeleted += s.blobsDeleted;
      result.bytesFreed += s.bytesFreed;
      result.linksRemoved += s.linksRemoved;
      result.errors += s.errors;
      if (s.remaining === 0 || s.examined === 0) break;
    }
    result.passMs = performance.now() - started;
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await stack.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
