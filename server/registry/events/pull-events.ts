// Pull events (events.pulls): a pull changes no metadata, so there is no atomic step to join. Pulls
// are gathered in memory, off the request path, and appended to the log in batches: `aggregated`
// gives one pulls.counted record per repository per interval, `each` one manifest.pulled record per
// pull. Memory is bounded; a process killed between two appends loses what it gathered since the last.
import type { FastifyBaseLogger } from 'fastify';
import { newRecordId, type ChangeRecord, type EventMetadata, type EventOrigin } from '../../../storage-drivers/metadata/event-types.js';

export interface PulledManifest {
  digest: string;
  mediaType: string;
  size: number;
}

/** What the manifest route calls on a GET: synchronous, never throws. */
export interface PullEventRecorder {
  pulled(repository: string, manifest: PulledManifest, tag: string | undefined, origin: EventOrigin): void;
}

export const NO_PULL_EVENTS: PullEventRecorder = { pulled: () => undefined };

export interface PullEventsOptions {
  events: EventMetadata;
  mode: 'aggregated' | 'each';
  /** aggregated: the interval one record covers; each: at most this long before a batch is appended. */
  intervalMs: number;
  /** Pulls (each) or repositories (aggregated) held before new ones are dropped. */
  maxPending: number;
  now: () => number;
  log: FastifyBaseLogger;
}

const PULLS_ORIGIN: EventOrigin = { actor: 'registry', actorKind: 'system', reason: 'pulls counted' };
/** `each`: a batch goes out at this size without waiting for the interval. */
const EACH_BATCH = 500;

interface Tally {
  from: number;
  count: number;
  tags: Map<string, number>;
}

export class PullEvents implements PullEventRecorder {
  private tallies = new Map<string, Tally>();
  private pending: ChangeRecord[] = [];
  private dropped = 0;
  private appending: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: PullEventsOptions) {
    this.timer = setInterval(() => void this.flush(), options.mode === 'each' ? Math.min(options.intervalMs, 1000) : options.intervalMs);
    this.timer.unref();
  }

  pulled(repository: string, manifest: PulledManifest, tag: string | undefined, origin: EventOrigin): void {
    const now = this.options.now();
    if (this.options.mode === 'each') {
      if (this.pending.length >= this.options.maxPending) {
        this.dropped++;
        return;
      }
      this.pending.push({
        id: newRecordId(now),
        at: now,
        origin,
        kind: 'pull',
        repository,
        digest: manifest.digest,
        mediaType: manifest.mediaType,
        size: manifest.size,
        ...(tag === undefined ? {} : { tag }),
      });
      if (this.pending.length >= EACH_BATCH) void this.flush();
      return;
    }
    let tally = this.tallies.get(repository);
    if (tally === undefined) {
      if (this.tallies.size >= this.options.maxPending) {
        this.dropped++;
        return;
      }
      tally = { from: now, count: 0, tags: new Map() };
      this.tallies.set(repository, tally);
    }
    tally.count++;
    if (tag !== undefined) tally.tags.set(tag, (tally.tags.get(tag) ?? 0) + 1);
  }

  /** Appends what was gathered; one append at a time, in order. */
  flush(): Promise<void> {
    const next = this.appending.then(() => this.appendGathered());
    this.appending = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush().catch(() => undefined);
  }

  private async appendGathered(): Promise<void> {
    const now = this.options.now();
    const records = this.pending;
    this.pending = [];
    for (const [repository, tally] of this.tallies) {
      records.push({
        id: newRecordId(now),
        at: now,
        origin: PULLS_ORIGIN,
        kind: 'pulls',
        repository,
        from: tally.from,
        to: now,
        count: tally.count,
        tags: Object.fromEntries(tally.tags),
      });
    }
    this.tallies = new Map();
    if (this.dropped > 0) {
      this.options.log.warn({ dropped: this.dropped }, `pull events: ${this.dropped} pulls were not recorded (more than ${this.options.maxPending} waiting)`);
      this.dropped = 0;
    }
    if (records.length === 0) return;
    try {
      await this.options.events.append(records);
    } catch (err) {
      // Pulls are statistics, not registry content: one failed append is reported and let go.
      this.options.log.warn({ err, records: records.length }, 'pull events: the event log refused a batch; those pulls are not recorded');
    }
  }
}
