// `berth replication status|run`: options, output, exit status. Runs in its own process next to the
// serving ones, on the configured storage: status reads the shared records, a run takes the same
// per-rule lease the servers' passes take, so none of them runs the rule meanwhile.
import { randomUUID } from 'node:crypto';
import { operands, optionValue, rejectUnknown, reportUsage, UsageError, wantsHelp, withStorage } from './command-options.js';
import { loadConfig, type BerthConfig } from './config.js';
import { openOperatorAudit } from './operations/audit.js';
import { replicationAuditCounts, replicationAuditEvent } from './operations/event-recorders.js';
import { BlobService } from './registry/blobs.js';
import { gcUsage } from './registry/gc/setup.js';
import { ImmutableTagRules } from './registry/immutable/rules.js';
import { Integrity } from './registry/integrity.js';
import { ManifestService } from './registry/manifests.js';
import { Quotas } from './registry/quotas/service.js';
import { LocalEndpoint } from './registry/replication/local.js';
import { reconcile } from './registry/replication/reconcile.js';
import type { RunSummary } from './registry/replication/rule-state.js';
import { buildRuleRuntimes } from './registry/replication/runtimes.js';
import { ruleStatus, type RuleStatus } from './registry/replication/status.js';
import { UploadService } from './registry/uploads.js';
import type { StorageStack } from './storage-stack.js';

export const REPLICATION_HELP = `Usage:
  berth replication status [--config FILE] [--rule R] [--json]
  berth replication run RULE [--config FILE] [--json]

status   per rule: direction, other registry, the last pass (when, result, tags by outcome), the
         pass running now, artifacts by state (synced, copying, failed, conflict), the lag (the
         longest a target has not matched its source) and the artifacts behind, with their errors.
         Read from the shared records: the same from any process.
run      one reconcile pass of RULE now, in this process, under the lease the serving processes
         take (a pass already going elsewhere: exit 3, nothing done). Tag results go to stderr,
         changes on the target to the audit log (stdout: to stderr here), the summary to stdout.
Exit status: 0 done; 1 an error, (status) a shown rule has failed artifacts or its last pass
failed, (run) some tags failed or the pass stopped; 2 bad usage or an unknown or disabled rule;
3 (run) another process runs a pass of RULE. See docs/replication.md.
`;

const OPTIONS = { values: ['--config', '--rule'], flags: ['--json', '--help', '-h'] };

export async function replicationCommand(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === undefined || wantsHelp(args)) {
    process.stdout.write(REPLICATION_HELP);
    return;
  }
  try {
    if (sub === 'status') {
      rejectUnknown(rest, OPTIONS);
      await status(rest);
    } else if (sub === 'run') {
      if (rest.includes('--rule')) throw new UsageError('run takes the rule as its operand: berth replication run RULE');
      const [rule, ...extra] = operands(rest, OPTIONS);
      if (rule === undefined) throw new UsageError('run needs the rule to run: berth replication run RULE');
      if (extra[0] !== undefined) throw new UsageError(`unknown option ${extra[0]}`);
      await run(rule, rest);
    } else throw new UsageError(`unknown replication command ${JSON.stringify(sub)}`);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    reportUsage('replication', err.message, REPLICATION_HELP);
  }
}

function enabledRule(config: BerthConfig, name: string) {
  const rule = config.replication.rules.find((r) => r.name === name);
  const known = config.replication.rules.map((r) => r.name).join(', ') || 'none configured';
  if (!rule) throw new UsageError(`no replication rule ${JSON.stringify(name)} (rules: ${known})`);
  if (!rule.enabled) throw new UsageError(`replication rule ${JSON.stringify(name)} is disabled (enabled: false)`);
  return rule;
}

function when(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function counts(record: Partial<Record<string, number>>): string {
  const parts = Object.entries(record).filter(([, n]) => (n ?? 0) > 0);
  return parts.length === 0 ? 'none' : parts.map(([k, n]) => `${n} ${k}`).join(', ');
}

function statusText(s: RuleStatus): string {
  const last = s.state.lastRun;
  const lines = [
    `${s.name}: ${s.direction} ${s.direction === 'push' ? 'to' : 'from'} ${s.registry}; lag ${s.lagSeconds.toFixed(0)} s; artifacts: ${counts(s.artifacts)}`,
    last
      ? `  last pass: ${when(last.finishedAt ?? last.startedAt)} ${last.result ?? 'unfinished'} (${last.repositories} repositories; tags: ${counts(last.tags)}; ${last.failures} failures, ${last.bytes} bytes)${last.lastError ? `: ${last.lastError}` : ''}`
      : '  last pass: never',
  ];
  if (s.state.running) {
    const r = s.state.running;
    lines.push(`  running: since ${when(r.startedAt)} on ${r.holder}, ${r.repositories} repositories so far, ${r.failures} failures`);
  }
  for (const a of s.behind) {
    lines.push(`  behind ${a.key} ${a.state} ${a.lagSeconds.toFixed(0)} s${a.error ? `: ${a.error}` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

async function status(args: string[]): Promise<void> {
  const config = loadConfig({ file: optionValue(args, '--config') });
  const only = optionValue(args, '--rule');
  if (only !== undefined) enabledRule(config, only);
  const json = args.includes('--json');
  await withStorage(config, async (storage) => {
    const rules = [];
    let bad = false;
    for (const rule of config.replication.rules) {
      if (only !== undefined && rule.name !== only) continue;
      const entry = { name: rule.name, direction: rule.direction, registry: rule.registry, enabled: rule.enabled };
      if (!rule.enabled) {
        rules.push(entry);
        if (!json) process.stdout.write(`${rule.name}: disabled\n`);
        continue;
      }
      const s = await ruleStatus(storage.metadata.replication, rule, Date.now);
      if ((s.artifacts.failed ?? 0) > 0 || s.state.lastRun?.result === 'failed') bad = true;
      rules.push({ ...entry, status: s });
      if (!json) process.stdout.write(statusText(s));
    }
    if (json) process.stdout.write(`${JSON.stringify({ rules })}\n`);
    else if (rules.length === 0) process.stdout.write('no replication rules configured (replication.rules)\n');
    if (bad) process.exitCode = 1;
  });
}

/** This Berth's side of a rule outside a server: the domain services over the configured stores. */
function localEndpoints(config: BerthConfig, storage: StorageStack, now: () => number): (rule: string) => LocalEndpoint {
  const { driver, metadata } = storage;
  const usage = gcUsage(metadata, config, now);
  const quotas = new Quotas(metadata, config.quotas, { now });
  // Integrity's findings (a corrupt blob met while copying) are the operator's to see.
  const say = (_details: object, message: string) => void process.stderr.write(`berth replication: ${message}\n`);
  const log = { warn: say, error: say };
  const integrity = new Integrity(driver, metadata, {
    verifyReads: config.storage.verifyReads,
    smallBytes: config.storage.verifySmallBytes,
    rememberVerified: config.storage.verifiedDigests,
    log,
  });
  const uploads = new UploadService(driver, metadata, {
    idleTimeoutMs: config.uploads.idleTimeoutSeconds * 1000,
    resumableHashing: config.uploads.resumableHashing === 'auto' ? config.metadata.store === 'redis' : config.uploads.resumableHashing,
    bodyTimeoutMs: config.http.bodyTimeoutSeconds * 1000,
    now,
    usage,
    quotas,
  });
  const manifests = new ManifestService(
    driver,
    metadata,
    { requireIndexChildren: config.manifests.requireIndexChildren, immutableTags: new ImmutableTagRules(config.immutableTags.rules) },
    integrity,
    usage,
    quotas,
  );
  const blobs = new BlobService(driver, metadata, integrity, usage, quotas, {});
  return (rule) => new LocalEndpoint({ metadata, manifests, blobs, uploads, origin: { actor: `replication:${rule}`, actorKind: 'system' } });
}

function runLine(rule: string, s: RunSummary): string {
  return `replication ${rule}: ${s.result ?? 'failed'}: ${s.repositories} repositories; tags: ${counts(s.tags)}; ${s.failures} failures, ${s.bytes} bytes sent; ${(((s.finishedAt ?? Date.now()) - s.startedAt) / 1000).toFixed(1)} s${s.lastError ? `: ${s.lastError}` : ''}\n`;
}

async function run(name: string, args: string[]): Promise<void> {
  const config = loadConfig({ file: optionValue(args, '--config') });
  enabledRule(config, name);
  const json = args.includes('--json');
  const now = Date.now;
  await withStorage(config, async (storage) => {
    const { runtimes, remotes } = buildRuleRuntimes({ config, metadata: storage.metadata, localEndpoint: localEndpoints(config, storage, now), now });
    // Opened before the pass: an unwritable audit file stops it before it changes anything.
    const audit = openOperatorAudit(config, { stdout: 'stderr' });
    const stop = new AbortController();
    const interrupt = () => stop.abort();
    process.once('SIGINT', interrupt);
    process.once('SIGTERM', interrupt);
    try {
      const rule = runtimes.find((r) => r.scope.name === name);
      if (!rule) throw new UsageError(`replication rule ${JSON.stringify(name)} is not enabled`);
      const result = await reconcile(
        rule,
        {
          metadata: storage.metadata,
          records: storage.metadata.replication,
          holder: `cli-${randomUUID()}`,
          leaseMs: config.replication.leaseSeconds * 1000,
          runTimeoutMs: config.replication.runTimeoutSeconds * 1000,
          now,
          each: (r) => {
            if ('failed' in r) {
              process.stderr.write(`replication ${name}: ${r.failed}:${r.tag}: failed: ${r.error.message}\n`);
              return;
            }
            if (r.outcome !== 'in_sync') process.stderr.write(`replication ${name}: ${r.targetRepository}:${r.tag}: ${r.outcome}\n`);
            const line = replicationAuditEvent({ kind: 'tag', rule: name, result: r, via: 'reconcile' });
            if (line) audit.emit(line);
          },
        },
        stop.signal,
      );
      if (!result.ran) {
        process.stderr.write(`berth replication: another process runs a pass of ${name} now; see berth replication status --rule ${name}\n`);
        process.exitCode = 3;
        return;
      }
      const { summary } = result;
      audit.emit({ action: 'replication_pass', rule: name, reason: summary.lastError, replication: replicationAuditCounts(summary) });
      process.stdout.write(json ? `${JSON.stringify(summary)}\n` : runLine(name, summary));
      if (summary.result !== 'ok') process.exitCode = 1;
    } finally {
      process.off('SIGINT', interrupt);
      process.off('SIGTERM', interrupt);
      for (const remote of remotes) remote.close();
      await audit.close();
    }
  });
}
