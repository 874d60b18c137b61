import { after, key, under, type Db } from './embedded-keys.js';
import { InvalidPositionError } from './event-records.js';
import type { ChangeRecord, DeadLetter, EndpointState, EventMetadata, LoggedRecord } from './event-types.js';

/*
 * The event log and its delivery state in the embedded store (sub-databases of the same lmdb
 * environment):
 *   eventLog        seq (8 bytes BE)   → { t: ms logged, r: ChangeRecord }   key order = seq order
 *   eventMeta       'seq'              → the last seq handed out (kept when trimming empties the log)
 *   eventEndpoints  name               → EndpointState
 *   deadLetters     endpoint \0 id     → DeadLetter   (ids are time-ordered, so key order = age)
 * A change's record is logged by the change's own write action (logInTransaction), so it commits or
 * aborts with the change: there is no outbox to relay. The kept seqs are contiguous (appended at the
 * end, trimmed from the start), so the length is last - first + 1 and trimming to `maxLength` deletes
 * the oldest in the same transaction. Positions are the seq in decimal. `t` never goes back (the
 * newest entry's `t` is a floor), so positionBefore can search by it.
 */

interface LogEntry {
  t: number;
  r: ChangeRecord;
}

export interface EmbeddedEventDbs {
  eventLog: Db<LogEntry>;
  eventMeta: Db<number>;
  eventEndpoints: Db<EndpointState>;
  deadLetters: Db<DeadLetter>;
}

export interface EmbeddedEventsContext {
  dbs: EmbeddedEventDbs;
  write<T>(what: string, action: () => T): Promise<T>;
  read<T>(what: string, action: () => T): Promise<T>;
  /** The log keeps at most this many records (checked: a positive integer). */
  maxLength: number;
}

const SEQ = key('seq');

function seqKey(seq: number): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(BigInt(seq));
  return buf;
}

function seqOf(k: Buffer): number {
  return Number(k.readBigUInt64BE(0));
}

function parsePosition(position: string): number {
  if (!/^\d{1,15}$/.test(position)) throw new InvalidPositionError(position);
  return Number(position);
}

function logged(k: Buffer, entry: LogEntry): LoggedRecord {
  const seq = seqOf(k);
  return { position: String(seq), seq, record: entry.r };
}

export class EmbeddedEvents implements EventMetadata {
  private readonly db: EmbeddedEventDbs;

  constructor(private readonly ctx: EmbeddedEventsContext) {
    this.db = ctx.dbs;
  }

  /** Inside a write transaction: appends the records to the log and trims it to its maximum length. */
  logInTransaction(records: ChangeRecord[]): void {
    if (records.length === 0) return;
    const last = this.edge('last');
    let seq = Math.max(this.db.eventMeta.get(SEQ) ?? 0, last?.seq ?? 0);
    const t = Math.max(Date.now(), last?.entry.t ?? 0);
    for (const r of records) this.db.eventLog.put(seqKey(++seq), { t, r });
    this.db.eventMeta.put(SEQ, seq);
    const first = this.edge('first')?.seq ?? seq;
    for (let s = first; s <= seq - this.ctx.maxLength; s++) this.db.eventLog.remove(seqKey(s));
  }

  append(records: ChangeRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return this.ctx.write('events.append', () => this.logInTransaction(records));
  }

  /** Nothing to move: every record is logged in its change's own transaction. */
  relay(_limit: number, _options?: { sweep?: boolean }): Promise<number> {
    return Promise.resolve(0);
  }

  read(afterPosition: string | undefined, limit: number): Promise<LoggedRecord[]> {
    try {
      const start = afterPosition === undefined ? undefined : seqKey(parsePosition(afterPosition) + 1);
      return this.ctx.read('events.read', () => {
        if (limit <= 0) return [];
        return Array.from(this.db.eventLog.getRange({ ...(start === undefined ? {} : { start }), limit }), ({ key: k, value }) => logged(k, value));
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  recent(limit: number, before?: string): Promise<LoggedRecord[]> {
    try {
      const below = before === undefined ? undefined : parsePosition(before);
      return this.ctx.read('events.recent', () => {
        if (limit <= 0 || below === 0) return [];
        const range = { reverse: true, limit, ...(below === undefined ? {} : { start: seqKey(below - 1) }) };
        return Array.from(this.db.eventLog.getRange(range), ({ key: k, value }) => logged(k, value));
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  positionBefore(time: number): Promise<string | undefined> {
    return this.ctx.read('events.positionBefore', () => {
      const first = this.edge('first');
      const last = this.edge('last');
      if (first === undefined || last === undefined) return undefined;
      // The first seq logged at or after `time` (t is non-decreasing along the seqs).
      let lo = first.seq;
      let hi = last.seq + 1;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if ((this.db.eventLog.get(seqKey(mid))?.t ?? -Infinity) < time) lo = mid + 1;
        else hi = mid;
      }
      return String(lo - 1);
    });
  }

  head(): Promise<{ position: string; seq: number; length: number } | undefined> {
    return this.ctx.read('events.head', () => {
      const first = this.edge('first');
      const last = this.edge('last');
      if (first === undefined || last === undefined) return undefined;
      return { position: String(last.seq), seq: last.seq, length: last.seq - first.seq + 1 };
    });
  }

  getEndpoint(name: string): Promise<EndpointState | undefined> {
    return this.ctx.read('events.getEndpoint', () => this.db.eventEndpoints.get(key(name)));
  }

  /** The stored revision is always expectedRevision + 1, whatever `next` says: the next CAS compares against it. */
  updateEndpoint(name: string, expectedRevision: number, next: EndpointState): Promise<boolean> {
    return this.ctx.write('events.updateEndpoint', () => {
      if ((this.db.eventEndpoints.get(key(name))?.revision ?? 0) !== expectedRevision) return false;
      this.db.eventEndpoints.put(key(name), { ...next, revision: expectedRevision + 1 });
      return true;
    });
  }

  listEndpoints(): Promise<string[]> {
    return this.ctx.read('events.listEndpoints', () => Array.from(this.db.eventEndpoints.getKeys(), (k) => k.toString('utf8')));
  }

  putDeadLetter(endpoint: string, letter: DeadLetter, max: number): Promise<void> {
    return this.ctx.write('events.putDeadLetter', () => {
      this.db.deadLetters.put(key(endpoint, letter.id), letter);
      // Fresh range objects: lmdb's getCount marks the options object it is given as count-only.
      const excess = this.db.deadLetters.getCount(under(endpoint)) - Math.max(0, max);
      if (excess <= 0) return;
      for (const k of Array.from(this.db.deadLetters.getKeys({ ...under(endpoint), limit: excess }))) this.db.deadLetters.remove(k);
    });
  }

  listDeadLetters(endpoint: string, afterId: string | undefined, limit: number): Promise<DeadLetter[]> {
    return this.ctx.read('events.listDeadLetters', () => {
      if (limit <= 0) return [];
      const range = under(endpoint);
      const start = afterId === undefined ? range.start : after(endpoint, afterId);
      return Array.from(this.db.deadLetters.getRange({ start, end: range.end, limit }), ({ value }) => value);
    });
  }

  countDeadLetters(endpoint: string): Promise<number> {
    return this.ctx.read('events.countDeadLetters', () => this.db.deadLetters.getCount(under(endpoint)));
  }

  deleteDeadLetter(endpoint: string, id: string): Promise<boolean> {
    return this.ctx.write('events.deleteDeadLetter', () => {
      if (this.db.deadLetters.get(key(endpoint, id)) === undefined) return false;
      this.db.deadLetters.remove(key(endpoint, id));
      return true;
    });
  }

  /** The oldest or newest kept log entry. */
  private edge(which: 'first' | 'last'): { seq: number; entry: LogEntry } | undefined {
    for (const { key: k, value } of this.db.eventLog.getRange({ limit: 1, ...(which === 'last' ? { reverse: true } : {}) }))
      return { seq: seqOf(k), entry: value };
    return undefined;
  }
}
