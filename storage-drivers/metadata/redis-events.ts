import { InvalidPositionError } from './event-records.js';
import type { ChangeRecord, DeadLetter, EndpointState, EventMetadata, LoggedRecord } from './event-types.js';
import type { RedisClient } from './redis-client.js';
import { DEAD_LETTER_KEYS, EVENT_SCRIPTS, LOG_KEYS, type EventScriptName } from './redis-event-scripts.js';
import type { RedisKeys } from './redis-keys.js';

/*
 * The event log in Redis (P = keyPrefix). A change's record cannot be XADDed to a shared log inside the
 * change's script on Cluster (another slot), so it goes to the repository's own outbox there, and relay
 * moves it to the log:
 *
 *   P{repo:<r>}:outbox    stream, entries { r: record JSON (caller-side fields), s: JSON of what the change's
 *                         script computed (event-types.ts's "store" fields) }, XADDed by the change's script
 *   P{events}:pending     zset, score ms, member repository: outboxes that may hold records. A writer ZADDs
 *                         (score now) *before* its script, like the catalog (redis.ts), so a record is never
 *                         in an outbox the index does not name, except after a failure (see the sweep)
 *   P{events}:log         stream, entries { seq, r, s } in log order, XADD MAXLEN ~ eventLogMaxLength: Redis
 *                         trims whole stream nodes, so it may keep up to a node (~100 entries) more
 *   P{events}:seq         counter: the last seq logged (a gap after a cursor = records trimmed)
 *   P{events}:relayed     hash repository → the last outbox id logged
 *   P{events}:endpoints   hash endpoint → EndpointState JSON (compare-and-set on its revision)
 *   P{events}:dead:<e>    zset, score 0, member event id (lex order = age: ids are time-ordered)
 *   P{events}:letters:<e> hash event id → DeadLetter JSON
 *
 * relay, per pending repository: XRANGE its outbox; one script in the `{events}` slot logs the entries
 * after the `relayed` mark and moves the mark; then XDEL them from the outbox. Relays racing in many
 * processes, or one that crashed before its XDEL, skip what the mark covers: every record is logged once,
 * in outbox order. A repository leaves the pending index only when its outbox was found empty and its
 * score is older than the grace period (a writer joined before its script; its entry may still be coming),
 * and only while that score is unchanged. The sweep (every SWEEP_EVERY relays, a process's first relay,
 * or when asked) walks the catalog and puts back any repository whose outbox is not empty, so a record
 * stranded by a failure between the index and the outbox is relayed late rather than never.
 * Records that are no repository's change (append) are logged directly.
 */

type ScriptRunner = (...args: (string | number)[]) => Promise<unknown>;
type StreamEntry = [id: string, fields: string[]];

export interface RedisEventsContext {
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  run<T>(what: string, action: () => Promise<T>): Promise<T>;
  maxLength: number;
  /** How long a repository found with an empty outbox stays pending after its last writer joined (ms). */
  pendingGraceMs: number;
}

export const DEFAULT_PENDING_GRACE_MS = 60_000;
/** A sweep every this many relays of one process. */
const SWEEP_EVERY = 600;
/** Pending repositories looked at per relay, oldest score first; and read at once. */
const PENDING_PER_RELAY = 1000;
const OUTBOX_READS_AT_ONCE = 50;
/** Entries per relay script: a script blocks Redis while it runs. */
const ENTRIES_PER_SCRIPT = 200;
const CATALOG_BATCH = 500;
const DEAD_LETTERS_PER_SCRIPT = 1000;

function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** cjson encodes an empty Lua table as {}: the store fields that are lists come back as []. */
function computedFields(json: string | undefined): Record<string, unknown> {
  if (json === undefined || json === '') return {};
  const parsed = JSON.parse(json) as Record<string, unknown>;
  for (const [name, value] of Object.entries(parsed)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0) parsed[name] = [];
  }
  return parsed;
}

function loggedOf([id, fields]: StreamEntry): LoggedRecord {
  // Both parts were written by this store (a draft from event-records.ts, a script's store fields).
  const record = { ...(JSON.parse(field(fields, 'r') ?? '{}') as Record<string, unknown>), ...computedFields(field(fields, 's')) } as unknown as ChangeRecord;
  return { position: id, seq: Number(field(fields, 'seq')), record };
}

/** Positions are checked before they reach Redis: a bad one is the caller's error, not Redis failing. */
function checkedPosition<T>(position: string | undefined, then: () => Promise<T>): Promise<T> {
  if (position !== undefined && !/^\d{1,20}-\d{1,20}$/.test(position)) return Promise.reject(new InvalidPositionError(position));
  return then();
}

/** Joins `repo` to the pending index; a writer awaits it before the script that XADDs to the outbox. */
export function markPending(client: RedisClient, keys: RedisKeys, repo: string): Promise<unknown> {
  return client.zadd(keys.events('pending'), Date.now(), repo);
}

export class RedisEvents implements EventMetadata {
  private relays = 0;

  constructor(private readonly ctx: RedisEventsContext) {
    for (const [name, lua] of Object.entries(EVENT_SCRIPTS)) {
      ctx.client.defineCommand(name, { lua: lua.source, numberOfKeys: lua.keys });
    }
  }

  private script(name: EventScriptName): ScriptRunner {
    const fn = (this.ctx.client as unknown as Record<EventScriptName, ScriptRunner>)[name];
    return fn.bind(this.ctx.client);
  }

  private logKeys(): string[] {
    return LOG_KEYS.map((kind) => this.ctx.keys.events(kind));
  }

  private deadKeys(endpoint: string): string[] {
    return DEAD_LETTER_KEYS.map((kind) => this.ctx.keys.deadLetters(endpoint, kind));
  }

  append(records: ChangeRecord[]): Promise<void> {
    return this.ctx.run('events.append', async () => {
      for (let i = 0; i < records.length; i += ENTRIES_PER_SCRIPT) {
        const batch = records.slice(i, i + ENTRIES_PER_SCRIPT).map((r) => JSON.stringify(r));
        await this.script('berthEventsAppend')(...this.logKeys().slice(0, 2), String(this.ctx.maxLength), ...batch);
      }
    });
  }

  relay(limit: number, options: { sweep?: boolean } = {}): Promise<number> {
    return this.ctx.run('events.relay', async () => {
      if (options.sweep === true || this.relays++ % SWEEP_EVERY === 0) await this.sweep();
      if (limit <= 0) return 0;
      const now = Date.now();
      const flat = await this.ctx.client.zrange(this.ctx.keys.events('pending'), 0, PENDING_PER_RELAY - 1, 'WITHSCORES');
      const pending: { repo: string; score: string }[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) pending.push({ repo: flat[i] as string, score: flat[i + 1] as string });
      let moved = 0;
      for (let i = 0; i < pending.length && moved < limit; i += OUTBOX_READS_AT_ONCE) {
        const batch = pending.slice(i, i + OUTBOX_READS_AT_ONCE);
        const want = limit - moved;
        const outboxes = await Promise.all(batch.map(({ repo }) => this.readOutbox(repo, want)));
        for (const [j, { repo, score }] of batch.entries()) {
          const entries = outboxes[j] as StreamEntry[];
          if (entries.length === 0) {
            if (Number(score) < now - this.ctx.pendingGraceMs) await this.script('berthEventsUnpend')(this.ctx.keys.events('pending'), repo, score);
            continue;
          }
          if (moved >= limit) continue;
          const taken = entries.slice(0, limit - moved);
          moved += await this.logEntries(repo, taken);
          await this.ctx.client.xdel(this.ctx.keys.outbox(repo), ...taken.map(([id]) => id));
        }
      }
      return moved;
    });
  }

  /**
   * The first step of relaying one repository, without the XDEL that ends it: logs up to `limit` of its
   * outbox entries not logged yet and leaves them in the outbox, as a relay that crashed in between
   * would. Returns how many it logged. (relay runs both steps; this is for tests of that crash.)
   */
  relayWithoutDelete(repo: string, limit: number): Promise<number> {
    return this.ctx.run('events.relay', async () => this.logEntries(repo, await this.readOutbox(repo, limit)));
  }

  private async readOutbox(repo: string, limit: number): Promise<StreamEntry[]> {
    return (await this.ctx.client.xrange(this.ctx.keys.outbox(repo), '-', '+', 'COUNT', Math.max(1, limit))) as StreamEntry[];
  }

  private async logEntries(repo: string, entries: StreamEntry[]): Promise<number> {
    let logged = 0;
    for (let i = 0; i < entries.length; i += ENTRIES_PER_SCRIPT) {
      const args = entries.slice(i, i + ENTRIES_PER_SCRIPT).flatMap(([id, fields]) => [id, field(fields, 'r') ?? '{}', field(fields, 's') ?? '{}']);
      logged += Number(await this.script('berthEventsRelay')(...this.logKeys(), repo, String(this.ctx.maxLength), ...args));
    }
    return logged;
  }

  /** Puts every repository of the catalog whose outbox holds entries back into the pending index. */
  private async sweep(): Promise<void> {
    let last: string | undefined;
    for (;;) {
      const repos = await this.ctx.client.zrangebylex(this.ctx.keys.catalog(), last === undefined ? '-' : `(${last}`, '+', 'LIMIT', 0, CATALOG_BATCH);
      if (repos.length === 0) return;
      const lengths = await Promise.all(repos.map((repo) => this.ctx.client.xlen(this.ctx.keys.outbox(repo))));
      const now = Date.now();
      const stranded = repos.filter((_, i) => (lengths[i] ?? 0) > 0);
      if (stranded.length > 0) await this.ctx.client.zadd(this.ctx.keys.events('pending'), 'NX', ...stranded.flatMap((repo) => [now, repo]));
      if (repos.length < CATALOG_BATCH) return;
      last = repos[repos.length - 1];
    }
  }

  read(after: string | undefined, limit: number): Promise<LoggedRecord[]> {
    return checkedPosition(after, () =>
      this.ctx.run('events.read', async () => {
        if (limit <= 0) return [];
        const entries = (await this.ctx.client.xrange(
          this.ctx.keys.events('log'),
          after === undefined ? '-' : `(${after}`,
          '+',
          'COUNT',
          limit,
        )) as StreamEntry[];
        return entries.map(loggedOf);
      }),
    );
  }

  recent(limit: number, before?: string): Promise<LoggedRecord[]> {
    return checkedPosition(before, () =>
      this.ctx.run('events.recent', async () => {
        if (limit <= 0) return [];
        const entries = (await this.ctx.client.xrevrange(
          this.ctx.keys.events('log'),
          before === undefined ? '+' : `(${before}`,
          '-',
          'COUNT',
          limit,
        )) as StreamEntry[];
        return entries.map(loggedOf);
      }),
    );
  }

  /** By the log's own ids (the time each record was logged), not the records' `at`. */
  positionBefore(time: number): Promise<string | undefined> {
    return this.ctx.run('events.positionBefore', async () => {
      const log = this.ctx.keys.events('log');
      const [first] = (await this.ctx.client.xrange(log, String(Math.max(0, Math.floor(time))), '+', 'COUNT', 1)) as StreamEntry[];
      if (first === undefined) return (await this.head())?.position;
      const [ms, n] = first[0].split('-').map(BigInt) as [bigint, bigint];
      if (n > 0n) return `${ms}-${n - 1n}`;
      return ms > 0n ? `${ms - 1n}-18446744073709551615` : '0-0';
    });
  }

  head(): Promise<{ position: string; seq: number; length: number } | undefined> {
    return this.ctx.run('events.head', async () => {
      const reply = (await this.script('berthEventsHead')(this.ctx.keys.events('log'))) as [string, string, number] | null;
      return reply === null ? undefined : { position: reply[0], seq: Number(reply[1]), length: reply[2] };
    });
  }

  getEndpoint(name: string): Promise<EndpointState | undefined> {
    return this.ctx.run('events.getEndpoint', async () => {
      const json = await this.ctx.client.hget(this.ctx.keys.events('endpoints'), name);
      return json === null ? undefined : (JSON.parse(json) as EndpointState);
    });
  }

  /** The stored revision is always expectedRevision + 1, whatever `next` says: the next CAS compares against it. */
  updateEndpoint(name: string, expectedRevision: number, next: EndpointState): Promise<boolean> {
    return this.ctx.run('events.updateEndpoint', async () => {
      const json = JSON.stringify({ ...next, revision: expectedRevision + 1 });
      return (await this.script('berthEventsUpdateEndpoint')(this.ctx.keys.events('endpoints'), name, String(expectedRevision), json)) === 1;
    });
  }

  listEndpoints(): Promise<string[]> {
    return this.ctx.run('events.listEndpoints', async () => {
      const names = await this.ctx.client.hkeys(this.ctx.keys.events('endpoints'));
      return names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    });
  }

  putDeadLetter(endpoint: string, letter: DeadLetter, max: number): Promise<void> {
    return this.ctx.run('events.putDeadLetter', async () => {
      await this.script('berthEventsPutDeadLetter')(...this.deadKeys(endpoint), letter.id, JSON.stringify(letter), String(max));
    });
  }

  listDeadLetters(endpoint: string, after: string | undefined, limit: number): Promise<DeadLetter[]> {
    return this.ctx.run('events.listDeadLetters', async () => {
      const found: DeadLetter[] = [];
      let last = after;
      while (found.length < limit) {
        const want = Math.min(DEAD_LETTERS_PER_SCRIPT, limit - found.length);
        const page = (await this.script('berthEventsListDeadLetters')(...this.deadKeys(endpoint), last ?? '', String(want))) as string[];
        const letters = page.map((json) => JSON.parse(json) as DeadLetter);
        found.push(...letters);
        if (page.length < want) break;
        last = letters[letters.length - 1]?.id;
      }
      return found;
    });
  }

  countDeadLetters(endpoint: string): Promise<number> {
    return this.ctx.run('events.countDeadLetters', () => this.ctx.client.zcard(this.ctx.keys.deadLetters(endpoint, 'ids')));
  }

  deleteDeadLetter(endpoint: string, id: string): Promise<boolean> {
    return this.ctx.run('events.deleteDeadLetter', async () => (await this.script('berthEventsDeleteDeadLetter')(...this.deadKeys(endpoint), id)) === 1);
  }
}
