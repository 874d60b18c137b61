// The process a retention preview is measured in (spawned by retention-preview.ts): opens the storage
// stack as `berth retention preview` does, previews one repository with the CI policy, renders every
// line as the CLI would (to a counter, not a terminal), and prints one JSON line of what it took.
import { readFileSync } from 'node:fs';
import { parseConfig } from '../server/config.js';
import { gcUsage } from '../server/registry/gc/setup.js';
import { NO_PULLS, NOTHING_IMMUTABLE } from '../server/registry/retention/evaluate.js';
import { preview, previewText } from '../server/registry/retention/preview.js';
import { Retention } from '../server/registry/retention/retention.js';
import { buildStorageStack } from '../server/storage-stack.js';

export interface PreviewChildResult {
  tags: number;
  deleted: number;
  kept: number;
  guard: string;
  previewMs: number;
  textBytes: number;
  startRssMiB: number;
  peakRssMiB: number;
}

async function main(): Promise<void> {
  const [file, repository] = process.argv.slice(2);
  if (!file || !repository) throw new Error('usage: retention-preview-child.js CONFIG.json REPOSITORY');
  const config = parseConfig(JSON.parse(readFileSync(file, 'utf8')));
  const stack = await buildStorageStack(config);
  try {
    await stack.metadata.ping();
    const startRssMiB = process.memoryUsage().rss / 1024 / 1024;
    const retention = new Retention({
      metadata: stack.metadata,
      usage: gcUsage(stack.metadata, config, Date.now),
      pullsOf: NO_PULLS,
      isImmutable: NOTHING_IMMUTABLE,
      now: Date.now,
      holder: 'bench',
      leaseMs: 60_000,
    });
    const started = performance.now();
    let textBytes = 0;
    const result: PreviewChildResult = { tags: 0, deleted: 0, kept: 0, guard: '', previewMs: 0, textBytes: 0, startRssMiB, peakRssMiB: 0 };
    for await (const entry of preview(retention, config.retention.policies, repository)) {
      if (entry.policy === null) throw new Error(`no policy matches ${repository}`);
      textBytes += Buffer.byteLength(previewText(entry));
      Object.assign(result, { tags: entry.total, deleted: entry.deleted, kept: entry.kept, guard: entry.guard.verdict });
    }
    result.previewMs = performance.now() - started;
    result.textBytes = textBytes;
    // maxRSS is the process's peak resident set in KiB, whatever happened between samples.
    result.peakRssMiB = process.resourceUsage().maxRSS / 1024;
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await stack.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
