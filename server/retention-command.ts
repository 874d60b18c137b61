// `berth retention preview|run`: options, output, exit status. Runs in its own process next to the
// serving ones, on the configured storage; a run takes the same per-repository leases they take.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { optionValue, rejectUnknown, reportUsage, UsageError, wantsHelp, withStorage } from './command-options.js';
import { loadConfig } from './config.js';
import { openOperatorAudit, type OperatorAudit } from './operations/audit.js';
import { retentionAuditCounts, retentionAuditEvent } from './operations/event-recorders.js';
import { gcUsage } from './registry/gc/setup.js';
import { NO_PULLS } from './registry/retention/evaluate.js';
import type { RetentionPolicy } from './registry/retention/policy.js';
import { preview, previewText } from './registry/retention/preview.js';
import { Retention, usesPulls, type RunSummary } from './registry/retention/retention.js';
import { retentionSources } from './registry/retention/sources.js';
import { policiesFromBody } from './routes/retention.js';

export const RETENTION_HELP = `Usage:
  berth retention preview [--config FILE] [--repository R] [--policy-file F] [--json] [--deleted-only]
  berth retention run [--config FILE] [--repository R] [--dry-run] [--force] [--json]

preview  shows, per repository a policy matches, every tag that would be deleted and every tag kept,
         with the rule that kept it (or, for each rule, why it did not), the guard's verdict and the
         untagged manifests the policy's untagged rule would delete. Nothing changes.
         --policy-file F   judge with the policies in F (YAML or JSON: a list, {policies: [...]}, or
                           one policy) instead of retention.policies: a change before it is deployed
         --deleted-only    leave the kept tags out of the text output
run      applies the configured policies now: every repository with a policy (or --repository R),
         each under the lease the serving processes take, so none of them handles it meanwhile.
         --dry-run         judge and report, delete nothing
         --force           go past the maxDeleteFraction guard (a policy that would delete every
                           tag of a repository is refused whatever the flags)
A tag is kept if any keep rule keeps it; latest and immutable tags are kept unless the policy sets
deleteLatest / deleteImmutable. Deletions and refusals go to the audit log (stdout: to stderr here).
Exit status: 0 done; 1 an error, a repository failed, or (run) a repository refused by the guard;
2 bad usage or an invalid policy. See docs/retention.md.
`;

const OPTIONS = { values: ['--config', '--repository', '--policy-file'], flags: ['--json', '--dry-run', '--force', '--deleted-only', '--help', '-h'] };

function policiesFromFile(file: string): RetentionPolicy[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --policy-file ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new UsageError(`--policy-file ${file} is neither YAML nor JSON: ${(err as Error).message}`);
  }
  try {
    return policiesFromBody(raw);
  } catch (err) {
    throw new UsageError(`--policy-file ${file}: ${(err as Error).message}`);
  }
}

function runLine(s: RunSummary): string {
  const would = s.dryRun ? 'would delete' : 'deleted';
  return (
    `retention${s.dryRun ? ' (dry run)' : ''}: ${s.repositories} repositories judged, ${would} ${s.tagsDeleted} tags and ${s.manifestsDeleted} untagged manifests; ` +
    `${s.refused} refused by the guard, ${s.busy} busy in another process, ${s.failed} failed, ${s.tagsChanged} tags re-pushed meanwhile (kept); ` +
    `${(s.durationMs / 1000).toFixed(1)} s\n`
  );
}

export async function retentionCommand(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === undefined || wantsHelp(args)) {
    process.stdout.write(RETENTION_HELP);
    return;
  }
  try {
    if (sub !== 'preview' && sub !== 'run') throw new UsageError(`unknown retention command ${JSON.stringify(sub)}`);
    rejectUnknown(rest, OPTIONS);
    if (sub === 'run' && rest.includes('--policy-file')) throw new UsageError('run applies the configured policies; preview a --policy-file, then deploy it');
    const policyFile = optionValue(rest, '--policy-file');
    const policies = policyFile === undefined ? undefined : policiesFromFile(policyFile);
    await execute(sub, rest, policies);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    reportUsage('retention', err.message, RETENTION_HELP);
  }
}

async function execute(sub: 'preview' | 'run', args: string[], override: RetentionPolicy[] | undefined): Promise<void> {
  const config = loadConfig({ file: optionValue(args, '--config') });
  const policies = override ?? config.retention.policies;
  const repository = optionValue(args, '--repository');
  const json = args.includes('--json');
  const dryRun = sub === 'preview' || args.includes('--dry-run');
  await withStorage(config, async (storage) => {
    // Opened before anything is judged: an unwritable audit file stops the run before it deletes anything.
    const audit: OperatorAudit | undefined = dryRun ? undefined : openOperatorAudit(config, { stdout: 'stderr' });
    try {
      const now = Date.now;
      const sources = retentionSources(config, storage.metadata);
      const pullPolicies = policies.filter(usesPulls).map((p) => JSON.stringify(p.name));
      if (sources.pullsOf === undefined && pullPolicies.length > 0) {
        const what = `polic${pullPolicies.length === 1 ? 'y' : 'ies'} ${pullPolicies.join(', ')} ${pullPolicies.length === 1 ? 'has' : 'have'} pull rules, but pull statistics are off (stats.enabled false)`;
        // Judged as never pulled, every tag kept only by a pull rule would go: a run must not.
        if (!dryRun) throw new UsageError(`${what}: run it in the server (POST /api/v1/retention/run) instead`);
        process.stderr.write(`berth retention: ${what}: tags are judged as never pulled; the server's preview (GET /api/v1/retention/preview) has them\n`);
      }
      const retention = new Retention({
        metadata: storage.metadata,
        usage: gcUsage(storage.metadata, config, now),
        pullsOf: sources.pullsOf ?? NO_PULLS,
        isImmutable: sources.isImmutable,
        now,
        holder: `cli-${randomUUID()}`,
        leaseMs: config.retention.leaseSeconds * 1000,
      });
      if (policies.length === 0) process.stderr.write('berth retention: no retention policies configured (retention.policies); nothing to judge\n');
      if (sub === 'preview') {
        const entries = [];
        for await (const entry of preview(retention, policies, repository)) {
          if (json) entries.push(entry);
          else process.stdout.write(previewText(entry, { kept: !args.includes('--deleted-only') }));
        }
        if (json) process.stdout.write(`${JSON.stringify({ repositories: entries })}\n`);
        return;
      }
      const force = args.includes('--force');
      const summary = await retention.run({
        policies,
        dryRun,
        force,
        // The command runs to the end of the walk: the batch bounds background runs.
        batch: Number.MAX_SAFE_INTEGER,
        repository,
        onEvent: (event) => {
          if (event.kind === 'refused') process.stderr.write(`retention: ${event.repository}: ${event.message}\n`);
          if (event.kind === 'repository' && (event.result === 'failed' || event.result === 'busy' || event.result === 'lost_lease')) {
            process.stderr.write(`retention: ${event.repository}: ${event.result}${event.message ? `: ${event.message}` : ''}\n`);
          }
          if (event.kind === 'repository' && event.result === 'done' && !json) {
            process.stderr.write(
              `retention: ${event.repository}: ${dryRun ? 'would delete' : 'deleted'} ${event.deleted} tags (policy ${JSON.stringify(event.policy)})\n`,
            );
          }
          if (!dryRun) {
            const line = retentionAuditEvent(event);
            if (line) audit?.emit(line);
          }
        },
      });
      if (!dryRun) audit?.emit({ action: 'retention_run', retention: retentionAuditCounts(summary) });
      process.stdout.write(json ? `${JSON.stringify(summary)}\n` : runLine(summary));
      if (summary.failed > 0 || summary.refused > 0) process.exitCode = 1;
    } finally {
      await audit?.close();
    }
  });
}
