// `berth pulls`: reads pull statistics straight from the configured metadata store, like `berth gc`.
import { OciError } from '../errors/oci-error.js';
import { operands, optionValue, reportUsage, UsageError, wantsHelp, wholeNumber, withStorage } from './command-options.js';
import { loadConfig } from './config.js';
import { assertName, assertTag } from './registry/references.js';
import { repositoryPullReport, tagPullReport, type DailyCount, type RepositoryPullReport, type TagPullReport } from './registry/stats/pull-report.js';

export const PULLS_HELP = `Usage: berth pulls <repository> [--tag T] [--days N] [--json] [--config FILE]

Shows how often a repository was pulled (manifest GETs; a pull by digest counts for the tags that
pointed at it): the total, the last pull, a daily series of the last N days (default 30, at most
stats.pullDays) and, per tag, its total and last pull, most pulled first. With --tag, that tag only.
Serving processes write their counts every stats.flushSeconds, so the latest pulls may not show yet.

  --tag T        one tag's totals and daily series
  --days N       days in the series, today included
  --json         the same JSON as GET /api/v1/pulls (all tags, in tag order)
  --config FILE  the configuration file (or BERTH_CONFIG)

Exit status: 0 shown; 1 unknown repository or tag, or an error; 2 bad usage. See docs/pull-statistics.md.
`;

const OPTIONS = { values: ['--config', '--tag', '--days'], flags: ['--json', '--help', '-h'] };

interface PullsArgs {
  repository: string;
  tag: string | undefined;
  days: number | undefined;
  json: boolean;
  configFile: string | undefined;
}

function parseArgs(args: string[]): PullsArgs {
  const positional = operands(args, OPTIONS);
  const unknown = positional.find((a) => a.startsWith('-'));
  if (unknown !== undefined) throw new UsageError(`unknown option ${unknown}`);
  if (positional.length !== 1) throw new UsageError(positional.length === 0 ? 'name the repository' : `one repository, got ${positional.join(' ')}`);
  const days = wholeNumber(args, '--days', 1);
  return {
    repository: positional[0] as string,
    tag: optionValue(args, '--tag'),
    days,
    json: args.includes('--json'),
    configFile: optionValue(args, '--config'),
  };
}

function when(iso: string | null): string {
  return iso === null ? 'never' : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function series(daily: DailyCount[]): string[] {
  const width = Math.max(1, ...daily.map((d) => String(d.count).length));
  return daily.map((d) => `  ${d.date}  ${String(d.count).padStart(width)}`);
}

export function repositoryText(r: RepositoryPullReport): string {
  const lines = [`${r.repository}: ${r.count} pulls, last ${when(r.lastPulled)}`, `daily, last ${r.days} days (UTC):`, ...series(r.daily)];
  const tags = [...r.tags].sort((a, b) => b.count - a.count || (a.tag < b.tag ? -1 : 1));
  lines.push(`tags (${tags.length}), most pulled first:`);
  const width = Math.max(1, ...tags.map((t) => String(t.count).length));
  for (const t of tags) lines.push(`  ${String(t.count).padStart(width)}  ${t.tag}  last ${when(t.lastPulled)}`);
  return `${lines.join('\n')}\n`;
}

export function tagText(r: TagPullReport): string {
  return `${[`${r.repository}:${r.tag}: ${r.count} pulls, last ${when(r.lastPulled)}`, `daily, last ${r.days} days (UTC):`, ...series(r.daily)].join('\n')}\n`;
}

export async function pullsCommand(args: string[]): Promise<void> {
  if (wantsHelp(args)) {
    process.stdout.write(PULLS_HELP);
    return;
  }
  let parsed: PullsArgs;
  try {
    parsed = parseArgs(args);
    assertName(parsed.repository);
    if (parsed.tag !== undefined) assertTag(parsed.tag);
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof OciError)) throw err;
    reportUsage('pulls', err.message, PULLS_HELP);
    return;
  }
  const config = loadConfig({ file: parsed.configFile });
  const maxDays = config.stats.pullDays;
  if (parsed.days !== undefined && parsed.days > maxDays) {
    process.stderr.write(`berth pulls: --days must be at most ${maxDays} (stats.pullDays: daily counts are kept that long)\n`);
    process.exitCode = 2;
    return;
  }
  const days = parsed.days ?? Math.min(30, maxDays);
  try {
    await withStorage(config, async (storage) => {
      const now = Date.now();
      if (parsed.tag !== undefined) {
        const r = await tagPullReport(storage.metadata, parsed.repository, parsed.tag, { days, now });
        process.stdout.write(parsed.json ? `${JSON.stringify(r)}\n` : tagText(r));
      } else {
        const r = await repositoryPullReport(storage.metadata, parsed.repository, { days, now, n: undefined, last: undefined });
        process.stdout.write(parsed.json ? `${JSON.stringify(r)}\n` : repositoryText(r));
      }
    });
  } catch (err) {
    if (!(err instanceof OciError)) throw err;
    process.stderr.write(`berth pulls: ${err.message}\n`);
    process.exitCode = 1;
  }
}
