// `berth events list|status|dead-letters|replay|discard`: the event log and its endpoints, read and
// changed straight in the configured metadata store like `berth gc` (no running server needed: the
// serving processes pick a replay up from the endpoint's shared state).
import { operands, optionValue, reportUsage, UsageError, wantsHelp, wholeNumber, withStorage } from './command-options.js';
import { loadConfig, type BerthConfig } from './config.js';
import { openOperatorAudit, type OperatorEvent } from './operations/audit.js';
import { eventsStatus, UnknownEndpointError, type EndpointStatus, type EventsStatus } from './registry/events/operator.js';
import {
  deadLettersPage,
  discard,
  recordsPage,
  replay,
  ReplaySkipsError,
  UnknownDeadLetterError,
  auditReason,
  type ReplayAnswer,
} from './registry/events/operator-answers.js';
import { configuredEndpoints, EVENTS_DISABLED } from './registry/events/operator-checks.js';
import { deadLetterLine, recordLine } from './registry/events/operator-views.js';
import { parseReplayTime, ReplayTimeError } from './registry/events/replay-time.js';
import { assertName } from './registry/references.js';
import type { EventMetadata } from '../storage-drivers/metadata/event-types.js';

const MAX_LIMIT = 1000;

const SUBCOMMANDS = {
  list: {
    usage: 'berth events list [--limit N] [--repository R] [--json] [--config FILE]',
    about: `The newest records of the event log, newest first (default 20, at most ${MAX_LIMIT}): when, the
record's number in the log, the events it stands for, what it is about, and who made the change.
  --repository R  only records of repository R (looked for among the newest 10,000 records)`,
    values: ['--limit', '--repository'],
    flags: [],
  },
  status: {
    usage: 'berth events status [--json] [--config FILE]',
    about: `The log (records logged, records kept) and per endpoint: records behind its cursor, the age of the
oldest one not yet handled (lag), its dead letters, the process delivering to it, its counters, its
last success, failure and error, and when it retries.`,
    values: [],
    flags: [],
  },
  'dead-letters': {
    usage: 'berth events dead-letters --endpoint NAME [--limit N] [--json] [--config FILE]',
    about: `The events the endpoint gave up on (default 50, at most ${MAX_LIMIT}), oldest id first: the event id, when
it was given up on, after how many attempts, the event, and the last error.`,
    values: ['--endpoint', '--limit'],
    flags: [],
  },
  replay: {
    usage: 'berth events replay --endpoint NAME (--since TIME | --dead-letters) [--json] [--config FILE]',
    about: `Delivers events to the endpoint again, with the same event ids:
  --since TIME    everything logged at or after TIME (the log keeps events.maxEvents records): the
                  endpoint's cursor moves back (never forward: a TIME after its oldest record not yet
                  handled is refused). TIME is a time ago, a whole number and s, m, h or d (30m, 2h,
                  1d), or ISO-8601 with a zone (2026-12-02T10:00:00Z, 2026-12-02T11:00+01:00), or a
                  date (2026-12-02, midnight UTC).
  --dead-letters  its dead letters, oldest first, before new events; each delivered one leaves the list.
The serving processes deliver; this command only tells them to.`,
    values: ['--endpoint', '--since'],
    flags: ['--dead-letters'],
  },
  discard: {
    usage: 'berth events discard --endpoint NAME (--id ID | --all) [--json] [--config FILE]',
    about: `Drops dead letters for good: the one with event id ID, or all of the endpoint's.`,
    values: ['--endpoint', '--id'],
    flags: ['--all'],
  },
} as const;

type Subcommand = keyof typeof SUBCOMMANDS;

const EXIT_STATUS = `Exit status: 0 done; 1 an unknown endpoint or dead letter, a replay that would skip records,\nevents off, or an error; 2 bad usage.`;

function subHelp(sub: Subcommand): string {
  const s = SUBCOMMANDS[sub];
  return `Usage: ${s.usage}\n\n${s.about}\n  --json          the same JSON as /api/v1/events\n  --config FILE   the configuration file (or BERTH_CONFIG)\n\n${EXIT_STATUS} See docs/events.md.\n`;
}

export const EVENTS_HELP = `Usage:
${Object.values(SUBCOMMANDS)
  .map((s) => `  ${s.usage}`)
  .join('\n')}

list          the newest records of the event log
status        the log and every endpoint's progress, dead letters and last error
dead-letters  the events an endpoint gave up on
replay        deliver again: from a time (--since 2h, --since 2026-12-02T10:00Z) or the dead letters
discard       drop dead letters for good
\`berth events <command> --help\` says more. ${EXIT_STATUS} See docs/events.md.
`;

const isSubcommand = (text: string | undefined): text is Subcommand => text !== undefined && Object.hasOwn(SUBCOMMANDS, text);

interface Parsed {
  sub: Subcommand;
  args: string[];
  json: boolean;
  configFile: string | undefined;
}

function parse(sub: Subcommand, args: string[]): Parsed {
  const s = SUBCOMMANDS[sub];
  const names = { values: ['--config', ...s.values], flags: ['--json', '--help', '-h', ...s.flags] };
  const stray = operands(args, names)[0];
  if (stray !== undefined) throw new UsageError(stray.startsWith('-') ? `unknown option ${stray}` : `unexpected argument ${JSON.stringify(stray)}`);
  for (const name of names.values) optionValue(args, name);
  return { sub, args, json: args.includes('--json'), configFile: optionValue(args, '--config') };
}

function limit(args: readonly string[], fallback: number): number {
  const n = wholeNumber(args, '--limit', 1) ?? fallback;
  if (n > MAX_LIMIT) throw new UsageError(`--limit must be at most ${MAX_LIMIT}, got ${n}`);
  return n;
}

function endpointOption(args: readonly string[]): string {
  const name = optionValue(args, '--endpoint');
  if (name === undefined) throw new UsageError('name the endpoint: --endpoint NAME (`berth events status` lists them)');
  return name;
}

/** Exactly one of two options, or bad usage. */
function oneOf(args: readonly string[], a: string, b: string): string {
  const has = [a, b].filter((o) => args.includes(o));
  if (has.length !== 1) throw new UsageError(has.length === 0 ? `give ${a} or ${b}` : `give ${a} or ${b}, not both`);
  return has[0] as string;
}

const when = (iso: string | undefined) => (iso === undefined ? 'never' : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

function endpointText(e: EndpointStatus): string {
  const lines = [
    `endpoint ${e.name}${e.configured ? '' : ' (not configured: state left by an endpoint removed from the configuration)'}`,
    `  ${e.behind} behind, lag ${e.lagSeconds}s, ${e.deadLetters} dead letters, ${e.holder === undefined ? 'no process delivering' : `delivered by ${e.holder}`}`,
    `  delivered ${e.delivered}, failed attempts ${e.failedAttempts}, dead-lettered ${e.deadLettered}, dropped ${e.dropped}`,
    `  last success ${when(e.lastSuccessAt)}, last failure ${when(e.lastFailureAt)}${e.lastError === undefined ? '' : `: ${e.lastError}`}`,
  ];
  if (e.retryAt !== undefined) lines.push(`  failing: next attempt not before ${when(e.retryAt)}`);
  if (e.replayingDeadLetters) lines.push('  replaying its dead letters');
  return lines.join('\n');
}

export function statusText(s: EventsStatus): string {
  const head = `log: ${s.logged} records logged, ${s.kept} kept`;
  const endpoints = s.endpoints.length === 0 ? ['no event endpoints configured (events.endpoints)'] : s.endpoints.map(endpointText);
  return `${[head, ...endpoints].join('\n')}\n`;
}

function replayText(r: ReplayAnswer): string {
  if (r.replay === 'since')
    return `endpoint ${r.endpoint}: cursor moved to the first record logged at or after ${when(r.since)}; the serving processes deliver from there again (same event ids)\n`;
  if (r.deadLetters === 0) return `endpoint ${r.endpoint} has no dead letters: nothing to replay\n`;
  return `endpoint ${r.endpoint}: ${r.deadLetters} dead letters to be delivered again, oldest first, before new events\n`;
}

async function run(p: Parsed, config: BerthConfig, events: EventMetadata): Promise<void> {
  const out = (json: unknown, text: () => string): void => {
    process.stdout.write(p.json ? `${JSON.stringify(json)}\n` : text());
  };
  const configured = configuredEndpoints(config);
  const { args } = p;
  switch (p.sub) {
    case 'list': {
      const repository = optionValue(args, '--repository');
      const page = await recordsPage(events, { n: limit(args, 20), repository });
      return out(page, () => (page.records.length === 0 ? 'no records in the event log\n' : `${page.records.map(recordLine).join('\n')}\n`));
    }
    case 'status': {
      const status = await eventsStatus(events, configured, Date.now());
      return out(status, () => statusText(status));
    }
    case 'dead-letters': {
      const page = await deadLettersPage(events, endpointOption(args), configured, { n: limit(args, 50) });
      return out(page, () => {
        if (page.total === 0) return `endpoint ${page.endpoint} has no dead letters\n`;
        const more = page.total > page.deadLetters.length ? `\n(${page.deadLetters.length} of ${page.total}; --limit shows more)` : '';
        return `${page.deadLetters.map(deadLetterLine).join('\n')}${more}\n`;
      });
    }
    case 'replay': {
      const now = Date.now();
      const what = oneOf(args, '--since', '--dead-letters') === '--since' ? { since: sinceOption(args, now) } : ({ deadLetters: true } as const);
      const answer = await replay(events, endpointOption(args), configured, what, now);
      await audited(config, { action: 'events_replayed', endpoint: answer.endpoint, reason: auditReason(answer) });
      return out(answer, () => replayText(answer));
    }
    case 'discard': {
      const id = oneOf(args, '--id', '--all') === '--id' ? optionValue(args, '--id') : undefined;
      const answer = await discard(events, endpointOption(args), configured, id);
      await audited(config, { action: 'events_discarded', endpoint: answer.endpoint, reason: auditReason({ ...answer, id }) });
      return out(answer, () => `discarded ${answer.discarded} dead letters of endpoint ${answer.endpoint}\n`);
    }
  }
}

/** One audit line for a change; audit lines meant for stdout go to stderr, as stdout is the command's answer. */
async function audited(config: BerthConfig, event: OperatorEvent): Promise<void> {
  const audit = openOperatorAudit(config, { stdout: 'stderr' });
  try {
    audit.emit(event);
  } finally {
    await audit.close();
  }
}

function sinceOption(args: readonly string[], now: number): number {
  try {
    return parseReplayTime(optionValue(args, '--since') ?? '', now, { relative: true });
  } catch (err) {
    if (err instanceof ReplayTimeError) throw new UsageError(`--since: ${err.message}`);
    throw err;
  }
}

/** Checks what can be checked without the store, so bad usage never waits on it. */
function check(p: Parsed): void {
  const { args } = p;
  if (p.sub === 'list') {
    limit(args, 20);
    const repository = optionValue(args, '--repository');
    if (repository !== undefined) {
      try {
        assertName(repository);
      } catch (err) {
        throw new UsageError(`--repository: ${(err as Error).message}`);
      }
    }
  }
  if (p.sub === 'dead-letters') limit(args, 50);
  if (p.sub === 'dead-letters' || p.sub === 'replay' || p.sub === 'discard') endpointOption(args);
  if (p.sub === 'replay' && oneOf(args, '--since', '--dead-letters') === '--since') sinceOption(args, Date.now());
  if (p.sub === 'discard') oneOf(args, '--id', '--all');
}

export async function eventsCommand(argv: string[]): Promise<void> {
  const [sub, ...args] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(EVENTS_HELP);
    return;
  }
  if (!isSubcommand(sub)) {
    reportUsage('events', `unknown events command ${JSON.stringify(sub)}`, EVENTS_HELP);
    return;
  }
  if (wantsHelp(args)) {
    process.stdout.write(subHelp(sub));
    return;
  }
  let parsed: Parsed;
  try {
    parsed = parse(sub, args);
    check(parsed);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    reportUsage(`events ${sub}`, err.message, subHelp(sub));
    return;
  }
  const config = loadConfig({ file: parsed.configFile });
  if (!config.events.enabled) {
    process.stderr.write(`berth events: ${EVENTS_DISABLED}\n`);
    process.exitCode = 1;
    return;
  }
  try {
    await withStorage(config, (storage) => run(parsed, config, storage.metadata.events));
  } catch (err) {
    if (!(err instanceof UnknownEndpointError) && !(err instanceof UnknownDeadLetterError) && !(err instanceof ReplaySkipsError)) throw err;
    process.stderr.write(`berth events ${sub}: ${err.message}\n`);
    process.exitCode = 1;
  }
}
