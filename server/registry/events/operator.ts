// What operators see and do about events, shared by `berth events` and /api/v1/events: the recent log,
// each endpoint's progress and dead letters, and replays. Every change is a compare-and-set on the
// endpoint's state, so it is safe while processes deliver.
import { changeEndpointState, type StateDraft } from './endpoint-state.js';
import { recordsBehind } from './lane.js';
import type { DeadLetter, EndpointState, EventMetadata, LoggedRecord } from '../../../storage-drivers/metadata/event-types.js';

export interface EndpointStatus {
  name: string;
  /** In this process's configuration (an endpoint removed from it keeps its state until deleted). */
  configured: boolean;
  /** Records logged after the endpoint's cursor. */
  behind: number;
  /** Seconds since the oldest record not yet handled was logged; 0 when none. */
  lagSeconds: number;
  deadLetters: number;
  /** Who delivers to it now, while the claim holds. */
  holder?: string;
  delivered: number;
  failedAttempts: number;
  deadLettered: number;
  dropped: number;
  lastSuccessAt?: string;
  lastFailureAt?: string;
  lastError?: string;
  retryAt?: string;
  replayingDeadLetters: boolean;
}

export interface EventsStatus {
  /** The newest record's seq (every record logged counts one), and how many the log keeps now. */
  logged: number;
  kept: number;
  endpoints: EndpointStatus[];
}

/** The operator named an endpoint the configuration does not have. */
export class UnknownEndpointError extends Error {
  constructor(
    readonly endpoint: string,
    configured: readonly string[],
  ) {
    super(`no event endpoint named ${JSON.stringify(endpoint)}; configured: ${configured.length === 0 ? 'none' : configured.join(', ')}`);
    this.name = 'UnknownEndpointError';
  }
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export async function eventsStatus(events: EventMetadata, configured: readonly string[], now: number): Promise<EventsStatus> {
  const head = await events.head();
  const names = [...new Set([...configured, ...(await events.listEndpoints())])].sort();
  const endpoints = await Promise.all(
    names.map(async (name): Promise<EndpointStatus> => {
      const state = await events.getEndpoint(name);
      const next = state === undefined ? [] : await events.read(state.cursor, 1);
      const status: EndpointStatus = {
        name,
        configured: configured.includes(name),
        behind: recordsBehind(head, state),
        lagSeconds: next[0] === undefined ? 0 : Math.max(0, Math.round((now - next[0].record.at) / 1000)),
        deadLetters: await events.countDeadLetters(name),
        delivered: state?.delivered ?? 0,
        failedAttempts: state?.failedAttempts ?? 0,
        deadLettered: state?.deadLettered ?? 0,
        dropped: state?.dropped ?? 0,
        replayingDeadLetters: state?.replayDeadLettersAt !== undefined,
      };
      if (state?.holder !== undefined && (state.leaseUntil ?? 0) > now) status.holder = state.holder;
      const optional = {
        lastSuccessAt: iso(state?.lastSuccessAt),
        lastFailureAt: iso(state?.lastFailureAt),
        lastError: state?.lastError,
        retryAt: iso(state?.retryAt),
      };
      for (const [k, v] of Object.entries(optional)) if (v !== undefined) (status as unknown as Record<string, unknown>)[k] = v;
      return status;
    }),
  );
  return { logged: head?.seq ?? 0, kept: head?.length ?? 0, endpoints };
}

/** The newest records, newest first, optionally of one repository (looked for among the newest `scan`). */
export async function recentRecords(
  events: EventMetadata,
  options: { limit: number; before?: string; repository?: string; scan?: number },
): Promise<LoggedRecord[]> {
  if (options.repository === undefined) return events.recent(options.limit, options.before);
  const found: LoggedRecord[] = [];
  let before = options.before;
  let scanned = 0;
  const scan = options.scan ?? 10_000;
  while (found.length < options.limit && scanned < scan) {
    const page = await events.recent(Math.min(500, scan - scanned), before);
    if (page.length === 0) break;
    scanned += page.length;
    before = (page[page.length - 1] as LoggedRecord).position;
    for (const logged of page) if ('repository' in logged.record && logged.record.repository === options.repository) found.push(logged);
  }
  return found.slice(0, options.limit);
}

/** Changes the endpoint's state (created if it has none yet), racing delivering processes safely. */
async function changeEndpoint(events: EventMetadata, name: string, change: (state: EndpointState) => StateDraft): Promise<void> {
  await changeEndpointState(events, name, (current) => change(current ?? { revision: 0 }));
}

function assertConfigured(name: string, configured: readonly string[]): void {
  if (!configured.includes(name)) throw new UnknownEndpointError(name, configured);
}

/**
 * Delivers again everything logged at or after `time` (the log keeps events.maxEvents records):
 * the cursor moves back, and the batch a process has in hand is not counted as done.
 */
export async function replaySince(events: EventMetadata, name: string, time: number, configured: readonly string[]): Promise<{ from: string | undefined }> {
  assertConfigured(name, configured);
  const position = await events.positionBefore(time);
  await changeEndpoint(events, name, (state) => ({ ...state, cursor: position, cursorSeq: undefined, attempts: undefined, retryAt: undefined }));
  return { from: position };
}

/** Asks the delivering process to deliver the dead letters again (oldest first) before going on. */
export async function replayDeadLetters(events: EventMetadata, name: string, configured: readonly string[], now: number): Promise<{ deadLetters: number }> {
  assertConfigured(name, configured);
  const count = await events.countDeadLetters(name);
  if (count > 0) await changeEndpoint(events, name, (state) => ({ ...state, replayDeadLettersAt: now }));
  return { deadLetters: count };
}

export function listDeadLetters(events: EventMetadata, name: string, after: string | undefined, limit: number): Promise<DeadLetter[]> {
  return events.listDeadLetters(name, after, limit);
}

/** Drops dead letters for good: the one named, or all of them. Returns how many went. */
export async function discardDeadLetters(events: EventMetadata, name: string, id: string | undefined): Promise<number> {
  if (id !== undefined) return (await events.deleteDeadLetter(name, id)) ? 1 : 0;
  let removed = 0;
  for (;;) {
    const page = await events.listDeadLetters(name, undefined, 500);
    if (page.length === 0) return removed;
    for (const letter of page) if (await events.deleteDeadLetter(name, letter.id)) removed++;
  }
}
