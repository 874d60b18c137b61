// The answers `berth events` (with --json) and /api/v1/events give, built once so the two faces say
// the same thing: the operations of operator.ts, paged and rendered as operator-views.ts shows them.
import type { EventMetadata } from '../../../storage-drivers/metadata/event-types.js';
import { assertKnownEndpoint } from './operator-checks.js';
import { discardDeadLetters, listDeadLetters, recentRecords, replayDeadLetters, replaySince, UnknownEndpointError } from './operator.js';
import { deadLetterView, recordView, type DeadLetterView, type RecordView } from './operator-views.js';

/** Records a repository filter looks among (newest first) for one page. */
const REPOSITORY_SCAN = 10_000;

export interface RecordsPage {
  records: RecordView[];
  /** Pass as `last` for the next, older page; absent when this page was not full. */
  next?: string;
}

export interface DeadLettersPage {
  endpoint: string;
  /** Dead letters the endpoint has in all. */
  total: number;
  deadLetters: DeadLetterView[];
  /** Pass as `last` for the next page; absent when this page was not full. */
  next?: string;
}

export type ReplayAnswer =
  | { endpoint: string; replay: 'since'; since: string; /** The log position the cursor moved to; null: the start of the log. */ from: string | null }
  | { endpoint: string; replay: 'deadLetters'; deadLetters: number };

export interface DiscardAnswer {
  endpoint: string;
  discarded: number;
}

/** What an audit line says was done (its `reason`): since:<time>, dead_letters, id:<id> or all. */
export function auditReason(answer: ReplayAnswer | (DiscardAnswer & { id: string | undefined })): string {
  if ('replay' in answer) return answer.replay === 'since' ? `since:${answer.since}` : 'dead_letters';
  return answer.id === undefined ? 'all' : `id:${answer.id}`;
}

/** The id named is not in the endpoint's dead-letter list. */
export class UnknownDeadLetterError extends Error {
  constructor(endpoint: string, id: string) {
    super(`endpoint ${endpoint} has no dead letter ${JSON.stringify(id)} (delivered by a replay, discarded, or never there)`);
    this.name = 'UnknownDeadLetterError';
  }
}

/** A replay from a time after the endpoint's oldest unhandled record would move its cursor forward, past records it never had. */
export class ReplaySkipsError extends Error {
  constructor(endpoint: string, oldest: number, since: number) {
    const at = new Date(oldest).toISOString();
    super(
      `endpoint ${endpoint} has not yet had the records logged since ${at} (its oldest not handled); replaying from ${new Date(since).toISOString()} would skip them: give a time at or before ${at}`,
    );
    this.name = 'ReplaySkipsError';
  }
}

export async function recordsPage(
  events: EventMetadata,
  options: { n: number; last?: string | undefined; repository?: string | undefined },
): Promise<RecordsPage> {
  const found = await recentRecords(events, {
    limit: options.n,
    ...(options.last === undefined ? {} : { before: options.last }),
    ...(options.repository === undefined ? {} : { repository: options.repository, scan: REPOSITORY_SCAN }),
  });
  const last = found[found.length - 1];
  return { records: found.map(recordView), ...(found.length === options.n && last !== undefined ? { next: last.position } : {}) };
}

export async function deadLettersPage(
  events: EventMetadata,
  endpoint: string,
  configured: readonly string[],
  options: { n: number; last?: string | undefined },
): Promise<DeadLettersPage> {
  await assertKnownEndpoint(events, endpoint, configured);
  const letters = await listDeadLetters(events, endpoint, options.last, options.n);
  const last = letters[letters.length - 1];
  return {
    endpoint,
    total: await events.countDeadLetters(endpoint),
    deadLetters: letters.map(deadLetterView),
    ...(letters.length === options.n && last !== undefined ? { next: last.id } : {}),
  };
}

export async function replay(
  events: EventMetadata,
  endpoint: string,
  configured: readonly string[],
  what: { since: number } | { deadLetters: true },
  now: number,
): Promise<ReplayAnswer> {
  if ('since' in what) {
    if (!configured.includes(endpoint)) throw new UnknownEndpointError(endpoint, configured);
    const state = await events.getEndpoint(endpoint);
    const [oldest] = state === undefined ? [] : await events.read(state.cursor, 1);
    if (oldest !== undefined && oldest.record.at < what.since) throw new ReplaySkipsError(endpoint, oldest.record.at, what.since);
    const { from } = await replaySince(events, endpoint, what.since, configured);
    return { endpoint, replay: 'since', since: new Date(what.since).toISOString(), from: from ?? null };
  }
  const { deadLetters } = await replayDeadLetters(events, endpoint, configured, now);
  return { endpoint, replay: 'deadLetters', deadLetters };
}

/** Discards the dead letter `id`, or every one when `id` is undefined; an id not there is an error. */
export async function discard(events: EventMetadata, endpoint: string, configured: readonly string[], id: string | undefined): Promise<DiscardAnswer> {
  await assertKnownEndpoint(events, endpoint, configured);
  const discarded = await discardDeadLetters(events, endpoint, id);
  if (id !== undefined && discarded === 0) throw new UnknownDeadLetterError(endpoint, id);
  return { endpoint, discarded };
}
