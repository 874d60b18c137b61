// `berth quotas`: the namespaces' storage usage against their limits, read from the configured stores
// like `berth gc` (no running server needed).
import { optionValue, rejectUnknown, reportUsage, UsageError, wantsHelp, withStorage } from './command-options.js';
import { loadConfig } from './config.js';
import { formatSize } from './registry/quotas/rules.js';
import { namespacePage, namespaceReport, type NamespaceReport } from './registry/quotas/report.js';

export const QUOTAS_HELP = `Usage: berth quotas [--config FILE] [--namespace N] [--json]

Shows each namespace with a quota rule or stored content: bytes used against its limit, bytes in
uploads in progress, and of the used bytes those only it holds (freed if it were deleted, after GC)
and those it shares with other namespaces. See docs/quotas.md.

  --namespace N  only namespace N (a repository name's first segment)
  --json         JSON on stdout: one report, or { "namespaces": [...] }

Exit status: 0 done; 2 bad usage.
`;

const OPTIONS = { values: ['--config', '--namespace'], flags: ['--json', '--help', '-h'] };

/** One line per namespace: `team  9.8 GiB of 10 GiB (98%, rule team-*)  exclusive 9 GiB, shared 800 MiB`. */
export function reportLine(r: NamespaceReport): string {
  const limit =
    r.limitBytes === undefined
      ? 'no limit'
      : `of ${formatSize(r.limitBytes)} (${r.limitBytes === 0 ? 100 : Math.floor((r.usedBytes / r.limitBytes) * 100)}%, rule ${r.rule ?? ''})`;
  const reserved = r.reservedBytes > 0 ? `, ${formatSize(r.reservedBytes)} uploading` : '';
  const split = `exclusive ${formatSize(r.exclusiveBytes)}, shared ${formatSize(r.sharedBytes)}${r.exact ? '' : ' (first digests only)'}`;
  return `${r.namespace}  ${formatSize(r.usedBytes)} ${limit}${reserved}  ${r.digests} digests, ${split}`;
}

export async function quotasCommand(args: string[]): Promise<void> {
  if (wantsHelp(args)) {
    process.stdout.write(QUOTAS_HELP);
    return;
  }
  let configFile: string | undefined;
  let namespace: string | undefined;
  try {
    rejectUnknown(args, OPTIONS);
    configFile = optionValue(args, '--config');
    namespace = optionValue(args, '--namespace');
    if (namespace !== undefined && (namespace === '' || namespace.includes('/')))
      throw new UsageError('--namespace is a repository name\'s first segment, without "/"');
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    reportUsage('quotas', err.message, QUOTAS_HELP);
    return;
  }
  const json = args.includes('--json');
  const config = loadConfig({ file: configFile });
  await withStorage(config, async (storage) => {
    const rules = config.quotas.rules;
    const now = Date.now();
    if (namespace !== undefined) {
      const report = await namespaceReport(storage.metadata, rules, namespace, { now });
      process.stdout.write(json ? `${JSON.stringify(report)}\n` : `${reportLine(report)}\n`);
      return;
    }
    const reports: NamespaceReport[] = [];
    let last: string | undefined;
    for (;;) {
      const page = await namespacePage(storage.metadata, rules, { n: 200, last });
      for (const ns of page.namespaces) reports.push(await namespaceReport(storage.metadata, rules, ns, { now }));
      if (page.next === undefined) break;
      last = page.next;
    }
    if (json) process.stdout.write(`${JSON.stringify({ namespaces: reports })}\n`);
    else process.stdout.write(reports.length === 0 ? 'no namespace has a quota rule or stored content\n' : `${reports.map(reportLine).join('\n')}\n`);
  });
}
