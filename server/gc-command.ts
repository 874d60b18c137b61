// `berth gc`: options, progress and summary lines, exit status. The work is gcFromConfig's (main.ts).
import { rejectUnknown, optionValue, reportUsage, UsageError, wantsHelp, wholeNumber } from './command-options.js';
import { gcFromConfig, type GcCommandResult, type GcProgress } from './main.js';
import { GcRefusedError } from './registry/gc/collector.js';
import type { GcRunSummary } from './registry/gc/run.js';

export const GC_HELP = `Usage: berth gc [--config FILE] [--dry-run] [--json] [--full] [--limit N] [--progress-ms MS]

Collects garbage now, next to the serving processes (no read-only window, any number of them may run
GC at once): a blob nothing references and nobody used for gc.delaySeconds goes to the quarantine, a
blob quarantined for gc.quarantineSeconds is deleted for good, an untagged manifest goes after
gc.untaggedAgeSeconds when gc.deleteUntagged is set, and abandoned uploads are ended. Passes repeat
until nothing due is left.

  --dry-run        report what would go and change nothing (every due item judged once; what a
                   deletion would queue in turn is not followed)
  --full           first queue every stored blob (and, with gc.deleteUntagged, every manifest): for
                   garbage nothing queued (bytes copied into storage around Berth, a lost queue).
                   After restoring the metadata store from a backup run \`berth metadata rebuild\`
                   instead: it restores what was pushed since from the journal, then queues everything
  --limit N        one pass of at most N queued items, the rest waits
  --json           one JSON summary on stdout instead of the human one
  --progress-ms MS how often a progress line goes to stderr (default 2000)

Progress, errors and (with audit.output: stdout) the audit lines go to stderr. SIGINT or SIGTERM
stops after the item at hand and prints the summary so far.
Exit status: 0 done; 1 some items failed (a later pass retries them), interrupted, or an error;
2 refused (the metadata store is not known complete: run \`berth metadata rebuild\`) or bad usage.
See docs/gc.md.
`;

const OPTIONS = { values: ['--config', '--limit', '--progress-ms'], flags: ['--dry-run', '--json', '--full', '--help', '-h'] };

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function progressLine(progress: GcProgress): string {
  if (progress.phase === 'queueing')
    return `gc: --full: queued ${plural(progress.queued.blobs, 'blob')} and ${plural(progress.queued.manifests, 'manifest')} so far`;
  const t = progress.totals;
  const would = t.dryRun ? 'would delete' : 'deleted';
  return (
    `gc: pass ${t.passes}: ${t.examined} examined, ${would} ${plural(t.manifestsDeleted, 'manifest')} and ${plural(t.blobsDeleted, 'blob')} ` +
    `(${formatBytes(t.bytesFreed)}), ${t.blobsQuarantined} quarantined, ${plural(t.errors, 'error')}`
  );
}

export function summaryText(result: GcCommandResult): string {
  const lines: string[] = [];
  if (result.queued) lines.push(`gc: --full queued ${plural(result.queued.blobs, 'stored blob')} and ${plural(result.queued.manifests, 'manifest')}`);
  const t: GcRunSummary = result;
  const head = t.dryRun
    ? `gc (dry run): would delete ${plural(t.manifestsDeleted, 'manifest')} and ${plural(t.blobsDeleted, 'blob')} (${formatBytes(t.bytesFreed)}), ` +
      `would quarantine ${plural(t.blobsQuarantined, 'blob')}`
    : `gc: deleted ${plural(t.manifestsDeleted, 'manifest')} and ${plural(t.blobsDeleted, 'blob')} (${formatBytes(t.bytesFreed)} freed), ` +
      `quarantined ${plural(t.blobsQuarantined, 'blob')}, removed ${plural(t.linksRemoved, 'repository link')}, ended ${plural(t.uploadsExpired, 'abandoned upload')}`;
  lines.push(head);
  lines.push(
    `gc: ${plural(t.passes, 'pass', 'passes')}, ${t.examined} items examined: ${t.kept} still referenced, ${t.deferred} not due yet, ` +
      `${plural(t.errors, 'error')}; ${t.remaining} due items left; ${(t.durationMs / 1000).toFixed(1)} s`,
  );
  return `${lines.join('\n')}\n`;
}

interface GcArgs {
  configFile: string | undefined;
  limit: number | undefined;
  progressMs: number | undefined;
}

function parseArgs(args: string[]): GcArgs {
  rejectUnknown(args, OPTIONS);
  return { configFile: optionValue(args, '--config'), limit: wholeNumber(args, '--limit', 1), progressMs: wholeNumber(args, '--progress-ms', 0) };
}

export async function gcCommand(args: string[]): Promise<void> {
  if (wantsHelp(args)) {
    process.stdout.write(GC_HELP);
    return;
  }
  let parsed: GcArgs;
  try {
    parsed = parseArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    reportUsage('gc', err.message, GC_HELP);
    return;
  }
  const { configFile, limit, progressMs } = parsed;
  const json = args.includes('--json');
  let lastLine = '';
  const stop = new AbortController();
  const interrupt = () => {
    process.stderr.write('gc: stopping after the item at hand\n');
    stop.abort();
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    const result = await gcFromConfig({
      configFile,
      dryRun: args.includes('--dry-run'),
      full: args.includes('--full'),
      limit,
      signal: stop.signal,
      ...(progressMs === undefined ? {} : { progressEveryMs: progressMs }),
      onProgress: (p) => {
        // A pass's last report and its end can carry the same totals.
        const line = progressLine(p);
        if (line !== lastLine) process.stderr.write(`${line}\n`);
        lastLine = line;
      },
      onAction: (a) => {
        if (a.action === 'gc_error') process.stderr.write(`gc: ${a.digest}: ${a.message}\n`);
      },
    });
    process.stdout.write(json ? `${JSON.stringify({ ...result, interrupted: stop.signal.aborted })}\n` : summaryText(result));
    if (result.errors > 0 || stop.signal.aborted) process.exitCode = 1;
  } catch (err) {
    if (!(err instanceof GcRefusedError)) throw err;
    process.stderr.write(`berth gc: ${err.message}\n`);
    process.exitCode = 2;
  } finally {
    process.removeListener('SIGINT', interrupt);
    process.removeListener('SIGTERM', interrupt);
  }
}
