import { runKeyCommand, runRobotCommand, runUserCommand } from '../auth/cli.js';
import { auditOperatorAction, type AuditAction } from './operations/audit.js';
import { isClusterWorker, runClusterPrimary } from './operations/cluster.js';
import { configCheck } from './config-check.js';
import { ConfigError, loadConfig } from './config.js';
import { eventsCommand } from './events-command.js';
import { gcCommand } from './gc-command.js';
import { pullsCommand } from './pulls-command.js';
import { quotasCommand } from './quotas-command.js';
import { replicationCommand } from './replication-command.js';
import { retentionCommand } from './retention-command.js';
import { rebuildFromConfig, scrubFromConfig, startServer } from './main.js';
import { ScrubBusyError } from './registry/scrub.js';

const HELP = `berth — an OCI container image registry

Usage:
  berth serve [--config FILE]     start the registry (default: filesystem storage under ./data, port 5000)
  berth config check FILE         validate a configuration file (with BERTH_* overrides) and exit
  berth user add|remove|list      manage users (htpasswd, bcrypt)
  berth robot create|revoke|list  manage CI robot accounts
  berth key rotate                start signing tokens with a new key
  berth metadata rebuild [--config FILE]
                                  recreate tags, manifests and links in the metadata store from storage
  berth scrub [--config FILE] [--rate BYTES_PER_S] [--restart]
                                  verify every stored blob and manifest; quarantine what is corrupt
  berth gc [--config FILE] [--dry-run] [--json] [--full] [--limit N]
                                  collect garbage now, next to the serving processes (docs/gc.md)
  berth pulls <repository> [--tag T] [--days N] [--json] [--config FILE]
                                  pull counts, last pulls and daily series (docs/pull-statistics.md)
  berth quotas [--config FILE] [--namespace N] [--json]
                                  storage used per namespace against its quota (docs/quotas.md)
  berth retention preview|run [--config FILE] [--repository R] [--policy-file F] [--dry-run] [--force] [--json]
                                  what the retention policies would delete and why; apply them now (docs/retention.md)
  berth replication status|run [RULE] [--config FILE] [--rule R] [--json]
                                  replication rules' state, lag and artifacts behind; a reconcile pass now (docs/replication.md)
  berth events list|status|dead-letters|replay|discard [--config FILE] [--json] …
                                  the event log, endpoints' progress and dead letters; replays (docs/events.md)
  berth help                      show this help

Environment: PORT, BERTH_DATA_DIR, BERTH_CONFIG and BERTH_<SECTION>_<KEY> overrides (see docs/configuration.md).
`;

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}

async function serve(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write('Usage: berth serve [--config FILE]\n\nStarts the registry. Stops gracefully on SIGTERM/SIGINT.\n');
    return;
  }
  const configFile = option(args, '--config');
  const config = loadConfig({ file: configFile });
  if (config.http.workers > 1 && !isClusterWorker()) {
    await runClusterPrimary(config, args);
    return;
  }
  const server = await startServer({ configFile });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      server.app.log.info({ signal }, 'shutting down');
      server.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          server.app.log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
}

/** Which successful account commands are audited, and as what. */
const AUDITED: Record<string, AuditAction> = {
  'user add': 'user_added',
  'user remove': 'user_removed',
  'robot create': 'robot_added',
  'robot revoke': 'robot_removed',
};

async function accountCommand(command: 'user' | 'robot' | 'key', args: string[]): Promise<void> {
  const configFile = option(args, '--config');
  const rest = configFile === undefined ? args : args.filter((a, i) => a !== '--config' && args[i - 1] !== '--config');
  const config = loadConfig({ file: configFile });
  const ctx = { dataDir: config.dataDir, auth: config.auth };
  const run = command === 'user' ? runUserCommand : command === 'robot' ? runRobotCommand : runKeyCommand;
  process.exitCode = await run(rest, ctx);
  const action = AUDITED[`${command} ${rest[0]}`];
  if (process.exitCode === 0 && action && rest[1]) await auditOperatorAction(config, { action, subject: rest[1] });
}

const SCRUB_HELP = `Usage: berth scrub [--config FILE] [--rate BYTES_PER_S] [--restart]

Hashes every object under blobs/ in storage (rate-limited: --rate, default storage.scrub.bytesPerSecond),
moves each one that does not match its digest to quarantine/ (the next push of it re-creates it), then
checks that every journaled blob and manifest link still has its bytes. Progress goes to stderr, a JSON
summary to stdout. Resumes where an interrupted run stopped unless --restart is given.
--progress-ms MS sets how often a progress line is printed and the cursor saved (default 5000).
Exit status: 0 all good, 1 corruption or missing objects found (or an error), 2 usage, 3 another scrub
is running.
`;

async function scrubCommand(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(SCRUB_HELP);
    return;
  }
  const known = new Set(['--config', '--rate', '--restart', '--progress-ms']);
  const unknown = args.filter((a, i) => a.startsWith('--') && !known.has(a) && !['--config', '--rate', '--progress-ms'].includes(args[i - 1] ?? ''));
  if (unknown.length > 0) {
    process.stderr.write(`unknown option ${unknown[0]}\n\n${SCRUB_HELP}`);
    process.exitCode = 2;
    return;
  }
  const rateText = option(args, '--rate');
  const rate = rateText === undefined ? undefined : Number(rateText);
  if (rate !== undefined && (!Number.isSafeInteger(rate) || rate < 1)) {
    process.stderr.write(`--rate must be a whole number of bytes per second, got ${JSON.stringify(rateText)}\n`);
    process.exitCode = 2;
    return;
  }
  const progressText = option(args, '--progress-ms');
  if (progressText !== undefined && !(Number.isSafeInteger(Number(progressText)) && Number(progressText) >= 0)) {
    process.stderr.write(`--progress-ms must be a whole number of milliseconds, got ${JSON.stringify(progressText)}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    const result = await scrubFromConfig({
      configFile: option(args, '--config'),
      ...(rate === undefined ? {} : { bytesPerSecond: rate }),
      restart: args.includes('--restart'),
      ...(progressText === undefined ? {} : { progressEveryMs: Number(progressText) }),
      onProgress: (p) => {
        const resumed = p.resumedAfter ? ` (resumed after ${p.resumedAfter})` : '';
        process.stderr.write(
          `scrub: ${p.phase}: ${p.checked} checked, ${p.remaining} to go, ${p.bytes} bytes, ${p.corrupt} corrupt, ${p.missing} missing${resumed}\n`,
        );
      },
      onBad: (e) => {
        process.stderr.write(
          `scrub: ${e.kind} ${e.digest}: ${e.reason === 'missing' ? 'missing from storage' : `${e.reason}, quarantined to ${e.quarantineKey ?? '(already gone)'}`}\n`,
        );
      },
    });
    const { bad, ...summary } = result;
    process.stdout.write(`${JSON.stringify({ ...summary, bad })}\n`);
    if (result.corrupt + result.missing > 0) {
      process.stderr.write(
        `scrub: found ${result.corrupt} corrupt and ${result.missing} missing objects; HEAD now answers 404 for them, so the next push of each heals it\n`,
      );
      process.exitCode = 1;
    }
  } catch (err) {
    if (!(err instanceof ScrubBusyError)) throw err;
    process.stderr.write(`berth scrub: ${err.message}\n`);
    process.exitCode = 3;
  }
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serve(rest);
      case 'config': {
        const [sub, file] = rest;
        if (sub !== 'check' || !file || rest.includes('--help')) {
          process.stdout.write('Usage: berth config check FILE\n\nValidates FILE (with BERTH_* environment overrides) and prints every problem.\n');
          if (sub !== 'check' || !file) process.exitCode = rest.includes('--help') ? 0 : 2;
          return;
        }
        const result = configCheck(file, { env: process.env });
        if (result.ok) process.stdout.write('ok\n');
        else {
          process.stderr.write(`${file}: invalid configuration\n${result.problems.map((p) => `  - ${p}`).join('\n')}\n`);
          process.exitCode = 1;
        }
        return;
      }
      case 'metadata': {
        if (rest[0] !== 'rebuild' || rest.includes('--help')) {
          process.stdout.write(
            'Usage: berth metadata rebuild [--config FILE]\n\nReads the journal in blob storage and writes every blob link, manifest, referrer and tag\ninto the configured metadata store (Redis or embedded). Safe to run more than once.\nAn unreadable journal entry is named by its storage key and skipped; the rest is restored\nand the command exits 1.\n',
          );
          if (rest[0] !== 'rebuild') process.exitCode = 2;
          return;
        }
        const result = await rebuildFromConfig({ configFile: option(rest, '--config') }, (p) => {
          process.stderr.write(`\rrebuilt ${p.repositories} repositories: ${p.manifests} manifests, ${p.tags} tags, ${p.blobs} blob links`);
        });
        process.stderr.write('\n');
        for (const bad of result.badEntries) process.stderr.write(`unreadable journal entry ${bad.key}: ${bad.reason}\n`);
        for (const t of result.skippedTags)
          process.stderr.write(`tag ${t.repository}:${t.tag} not restored: its manifest ${t.digest} has no readable journal entry\n`);
        const restored = `restored ${result.manifests} manifests, ${result.tags} tags and ${result.blobs} blob links in ${result.repositories} repositories`;
        if (result.badEntries.length > 0) {
          // Non-zero, so a script running the rebuild notices that some metadata is still missing.
          process.stderr.write(
            `${restored}; ${result.badEntries.length} journal entries could not be read (listed above): restore them from a backup or push those images again\n`,
          );
          process.exitCode = 1;
        } else process.stderr.write(`${restored}\n`);
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return;
      }
      case 'scrub':
        return await scrubCommand(rest);
      case 'gc':
        return await gcCommand(rest);
      case 'pulls':
        return await pullsCommand(rest);
      case 'quotas':
        return await quotasCommand(rest);
      case 'retention':
        return await retentionCommand(rest);
      case 'events':
        return await eventsCommand(rest);
      case 'replication':
        return await replicationCommand(rest);
      case 'user':
      case 'robot':
      case 'key':
        return await accountCommand(command, rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        return;
      default:
        process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${HELP}`);
        process.exitCode = 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else process.stderr.write(`berth: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
