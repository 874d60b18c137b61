// One endpoint's delivery, run by every process and claimed by one at a time: the claim is a lease in
// the endpoint's shared state, and the cursor moves only under it, by compare-and-set. A process that
// dies mid-batch leaves the cursor where the batch began; once its lease runs out another process
// takes the endpoint over and delivers the batch again (at least once: the same event ids).
import type { ChangeRecord, EndpointState, EventMetadata, LoggedRecord } from '../../../storage-drivers/metadata/event-types.js';
import { changeEndpointState, type StateDraft } from './endpoint-state.js';

/** What a lane needs of an event: its stable id, and the repository its order is kept in. */
export interface LaneEvent {
  id: string;
  repository?: string | undefined;
}

export interface DeliveryOutcome {
  ok: boolean;
  /** A failure worth trying again (endpoint down, overloaded, timed out); else it is dead-lettered at once. */
  retryable: boolean;
  error?: string;
  status?: number;
  retryAfterMs?: number;
}

/** How a lane reaches its endpoint: filter, format, signature and HTTP behind two calls. */
export interface EndpointTransport<E extends LaneEvent> {
  accepts(event: E): boolean;
  deliver(event: E, attempt: number, signal: AbortSignal): Promise<DeliveryOutcome>;
}

export interface LanePolicy {
  maxAttempts: number;
  /** Repositories delivered in parallel; one repository's events always go one after another. */
  concurrency: number;
  maxDeadLetters: number;
  /** The wait after failed attempt `attempt` (1-based). */
  backoffMs(attempt: number, retryAfterMs: number | undefined): number;
  /** Log records taken per batch. */
  batchSize: number;
  leaseMs: number;
}

export type LaneObservation<E extends LaneEvent> =
  | { kind: 'delivered'; endpoint: string; event: E; attempts: number }
  | { kind: 'failed'; endpoint: string; event: E; attempt: number; error: string; retryInMs: number }
  | { kind: 'dead_lettered'; endpoint: string; event: E; attempts: number; error: string }
  | { kind: 'dropped'; endpoint: string; count: number }
  /** After each look at the log: how far behind the endpoint is. */
  | { kind: 'progress'; endpoint: string; behind: number; lagSeconds: number };

export interface LaneDeps<E extends LaneEvent> {
  events: EventMetadata;
  endpoint: string;
  transport: EndpointTransport<E>;
  policy: LanePolicy;
  /** Unique per process. */
  holder: string;
  expand(record: ChangeRecord): E[];
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  observe?(observation: LaneObservation<E>): void;
}

export type LaneResult = 'worked' | 'idle' | 'busy';

/** The lease ran out or was taken over: the batch in hand is left to the new holder. */
export class LeaseLostError extends Error {
  constructor(endpoint: string) {
    super(`the claim on endpoint ${endpoint} was lost; another process delivers to it now`);
    this.name = 'LeaseLostError';
  }
}

const DEAD_LETTER_PAGE = 100;

interface Counts {
  delivered: number;
  deadLettered: number;
}

export class EndpointLane<E extends LaneEvent> {
  /** State changes of this lane, one at a time: parallel repositories never race each other's CAS. */
  private updates: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: LaneDeps<E>) {}

  /** Claims the endpoint, replays dead letters if asked, delivers one batch, moves the cursor past it. */
  async runOnce(outer: AbortSignal): Promise<LaneResult> {
    const claimed = await this.claim();
    if (!claimed.mine || claimed.state === undefined) {
      await this.report(claimed.state);
      return 'busy';
    }
    const { state } = claimed;
    const controller = new AbortController();
    const onOuterAbort = () => controller.abort(outer.reason);
    outer.addEventListener('abort', onOuterAbort, { once: true });
    const keeper = setInterval(() => void this.renew().catch(() => controller.abort(new LeaseLostError(this.deps.endpoint))), this.deps.policy.leaseMs / 3);
    try {
      const signal = controller.signal;
      let worked = false;
      if (state.replayDeadLettersAt !== undefined) worked = await this.replayDeadLetters(state.replayDeadLettersAt, signal);
      const batch = await this.deps.events.read(state.cursor, this.deps.policy.batchSize);
      if (batch.length === 0) {
        await this.report(state);
        return worked ? 'worked' : 'idle';
      }
      await this.deliverBatch(state, batch, signal);
      return 'worked';
    } catch (err) {
      if (controller.signal.aborted && controller.signal.reason instanceof LeaseLostError) return 'busy';
      throw err;
    } finally {
      clearInterval(keeper);
      outer.removeEventListener('abort', onOuterAbort);
    }
  }

  /** Gives the claim up (shutdown), so another process need not wait for the lease to run out. */
  async release(): Promise<void> {
    await this.update((s) => (s?.holder === this.deps.holder ? { ...s, holder: undefined, leaseUntil: undefined } : undefined));
  }

  /** The state after the attempt, and whether this process holds the endpoint now. */
  private async claim(): Promise<{ state: EndpointState | undefined; mine: boolean }> {
    const { holder, policy } = this.deps;
    const existing = await this.deps.events.getEndpoint(this.deps.endpoint);
    // A new endpoint starts at the log's head: it is told what happens from now on, not the history.
    const head = existing === undefined ? await this.deps.events.head() : undefined;
    const state = await this.update((s) => {
      const now = this.deps.now();
      if (s?.holder !== undefined && s.holder !== holder && (s.leaseUntil ?? 0) > now) return undefined;
      // Held by this process with most of the lease left: no write.
      if (s?.holder === holder && (s.leaseUntil ?? 0) - now > (policy.leaseMs * 2) / 3) return undefined;
      const base: EndpointState = s ?? { revision: 0, ...(head ? { cursor: head.position, cursorSeq: head.seq } : {}) };
      return { ...base, holder, leaseUntil: now + policy.leaseMs };
    });
    return { state, mine: state?.holder === holder && (state.leaseUntil ?? 0) > this.deps.now() };
  }

  private async renew(): Promise<void> {
    const next = await this.update((s) => (s?.holder === this.deps.holder ? { ...s, leaseUntil: this.deps.now() + this.deps.policy.leaseMs } : undefined));
    if (next?.holder !== this.deps.holder) throw new LeaseLostError(this.deps.endpoint);
    // A batch held up by a failing endpoint can last hours: the backlog gauges must keep growing meanwhile.
    await this.report(next);
  }

  private async deliverBatch(state: EndpointState, batch: LoggedRecord[], signal: AbortSignal): Promise<void> {
    const { endpoint } = this.deps;
    const first = batch[0] as LoggedRecord;
    const last = batch[batch.length - 1] as LoggedRecord;
    // The log keeps a bounded number of records: a gap after the cursor is what it dropped unread.
    const dropped = state.cursorSeq === undefined ? 0 : Math.max(0, first.seq - state.cursorSeq - 1);
    if (dropped > 0) this.deps.observe?.({ kind: 'dropped', endpoint, count: dropped });

    // Each event with its own record: a dead letter keeps the record its event came from.
    const byRepository = new Map<string, { event: E; record: ChangeRecord }[]>();
    for (const logged of batch) {
      for (const event of this.deps.expand(logged.record)) {
        if (!this.deps.transport.accepts(event)) continue;
        const key = event.repository ?? '';
        const list = byRepository.get(key) ?? [];
        list.push({ event, record: logged.record });
        byRepository.set(key, list);
      }
    }
    const counts: Counts = { delivered: 0, deadLettered: 0 };
    if (this.deps.observe) this.deps.observe({ kind: 'progress', endpoint, behind: await this.behind(state), lagSeconds: this.lagSeconds(first) });
    await runLimited([...byRepository.values()], this.deps.policy.concurrency, async (events) => {
      for (const { event, record } of events) await this.deliver(event, record, counts, signal, state.attempts?.[event.id] ?? 0);
    });
    const next = await this.update((s) => {
      if (s?.holder !== this.deps.holder) return undefined;
      // An operator moved the cursor meanwhile (a replay from a point in time): that wins.
      if (s.cursor !== state.cursor) return undefined;
      return {
        ...s,
        cursor: last.position,
        cursorSeq: last.seq,
        attempts: undefined,
        retryAt: undefined,
        delivered: (s.delivered ?? 0) + counts.delivered,
        deadLettered: (s.deadLettered ?? 0) + counts.deadLettered,
        dropped: (s.dropped ?? 0) + dropped,
        ...(counts.delivered > 0 ? { lastSuccessAt: this.deps.now() } : {}),
      };
    });
    if (next?.holder !== this.deps.holder) throw new LeaseLostError(endpoint);
    await this.report(next);
  }

  /** Delivers one event, retrying with backoff; dead-letters it when it cannot be delivered. True once delivered. */
  private async deliver(event: E, record: ChangeRecord, counts: Counts, signal: AbortSignal, attemptsSoFar: number): Promise<boolean> {
    const { endpoint, policy } = this.deps;
    let attempts = attemptsSoFar;
    for (;;) {
      signal.throwIfAborted();
      attempts++;
      const outcome = await this.deps.transport
        .deliver(event, attempts, signal)
        .catch((err: unknown): DeliveryOutcome => ({ ok: false, retryable: true, error: err instanceof Error ? err.message : String(err) }));
      signal.throwIfAborted();
      if (outcome.ok) {
        counts.delivered++;
        this.deps.observe?.({ kind: 'delivered', endpoint, event, attempts });
        return true;
      }
      const error = outcome.error ?? `failed${outcome.status === undefined ? '' : ` with HTTP ${outcome.status}`}`;
      if (!outcome.retryable || attempts >= policy.maxAttempts) {
        await this.deps.events.putDeadLetter(endpoint, { id: event.id, record, attempts, lastError: error, deadAt: this.deps.now() }, policy.maxDeadLetters);
        counts.deadLettered++;
        this.deps.observe?.({ kind: 'dead_lettered', endpoint, event, attempts, error });
        await this.update((s) =>
          s?.holder === this.deps.holder ? { ...s, attempts: without(s.attempts, event.id), ...failure(s, error, this.deps.now()) } : undefined,
        );
        return false;
      }
      const wait = policy.backoffMs(attempts, outcome.retryAfterMs);
      const now = this.deps.now();
      await this.update((s) =>
        s?.holder === this.deps.holder
          ? { ...s, attempts: { ...s.attempts, [event.id]: attempts }, ...failure(s, error, now), retryAt: now + wait }
          : undefined,
      );
      this.deps.observe?.({ kind: 'failed', endpoint, event, attempt: attempts, error, retryInMs: wait });
      await this.deps.sleep(wait, signal);
    }
  }

  /** Delivers the dead letters again, oldest first: each one delivered leaves the list, the others stay. */
  private async replayDeadLetters(requestedAt: number, signal: AbortSignal): Promise<boolean> {
    const { events, endpoint } = this.deps;
    const counts: Counts = { delivered: 0, deadLettered: 0 };
    let after: string | undefined;
    let any = false;
    for (;;) {
      const page = await events.listDeadLetters(endpoint, after, DEAD_LETTER_PAGE);
      if (page.length === 0) break;
      for (const letter of page) {
        after = letter.id;
        any = true;
        const event = this.deps.expand(letter.record).find((e) => e.id === letter.id);
        // Filters may have changed since: a letter the endpoint no longer takes is dropped too.
        if (event === undefined || !this.deps.transport.accepts(event)) {
          await events.deleteDeadLetter(endpoint, letter.id);
          continue;
        }
        if (await this.deliver(event, letter.record, counts, signal, 0)) await events.deleteDeadLetter(endpoint, letter.id);
      }
    }
    await this.update((s) =>
      s?.holder === this.deps.holder && s.replayDeadLettersAt === requestedAt
        ? { ...s, replayDeadLettersAt: undefined, delivered: (s.delivered ?? 0) + counts.delivered }
        : undefined,
    );
    return any;
  }

  private async behind(state: EndpointState): Promise<number> {
    return recordsBehind(await this.deps.events.head(), state);
  }

  private lagSeconds(oldestUndelivered: LoggedRecord | undefined): number {
    return oldestUndelivered === undefined ? 0 : Math.max(0, (this.deps.now() - oldestUndelivered.record.at) / 1000);
  }

  private async report(state: EndpointState | undefined): Promise<void> {
    if (this.deps.observe === undefined) return;
    const next = state === undefined ? [] : await this.deps.events.read(state.cursor, 1);
    this.deps.observe({
      kind: 'progress',
      endpoint: this.deps.endpoint,
      behind: state === undefined ? 0 : await this.behind(state),
      lagSeconds: this.lagSeconds(next[0]),
    });
  }

  /** Changes the shared state; this lane's changes one at a time, so parallel repositories never race each other. */
  private update(mutate: (current: EndpointState | undefined) => StateDraft | undefined): Promise<EndpointState | undefined> {
    const run = () => changeEndpointState(this.deps.events, this.deps.endpoint, mutate);
    const result = this.updates.then(run, run);
    this.updates = result.catch(() => undefined);
    return result;
  }
}

/** Records logged after the endpoint's cursor (a cursor without its seq, just moved back: all the log keeps). */
export function recordsBehind(head: { seq: number; length: number } | undefined, state: EndpointState | undefined): number {
  if (head === undefined || state === undefined) return 0;
  return Math.max(0, head.seq - (state.cursorSeq ?? head.seq - head.length));
}

function failure(s: EndpointState, error: string, now: number): StateDraft {
  return { failedAttempts: (s.failedAttempts ?? 0) + 1, lastFailureAt: now, lastError: error.slice(0, 500) };
}

function without(attempts: Record<string, number> | undefined, id: string): Record<string, number> | undefined {
  if (attempts === undefined || !(id in attempts)) return attempts;
  const { [id]: _gone, ...rest } = attempts;
  return Object.keys(rest).length === 0 ? undefined : rest;
}

/** Runs `work` over `items`, at most `limit` at once; the first failure is thrown once all have settled. */
async function runLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (err) {
        errors.push(err);
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (errors.length > 0) throw errors[0];
}
