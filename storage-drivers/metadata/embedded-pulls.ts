import { ageKey, key, lastPart, under, type Db } from './embedded-keys.js';
import {
  DAY_MS,
  dayOf,
  daysOf,
  type PullBatch,
  type PullBatchEntry,
  type PullMetadata,
  type PullSeries,
  type PullTally,
  type SeriesRange,
} from './pull-types.js';

/*
 * Pull statistics in the embedded store (sub-databases of the same lmdb environment, so a flush reads
 * the tags that point at a digest in the transaction that credits them):
 *   pullTotals    repo                → { count, last }   the repository's totals
 *                 repo \0 tag         → { count, last }   a tag's totals
 *   pullDays      day \0 repo         → count             the repository's pulls that UTC day
 *                 day \0 repo \0 tag  → count             the tag's
 *   pullBatches   id \0 repo \0 day   → ms recorded       a flush already applied (a retry changes nothing)
 *   pullBatchAge  ms(6 bytes BE) id \0 repo \0 day → true  to forget those after a day
 * `day` is zero-padded decimal, so the keys of old days sort first and trimming reads from the start.
 */

/** Old daily entries and batch marks removed per flush at most: trimming never makes a flush slow. */
const TRIM_PER_FLUSH = 5000;
const BATCH_MEMORY_MS = DAY_MS;

function dayPart(day: number): string {
  return String(day).padStart(8, '0');
}

export interface EmbeddedPullsDbs {
  tagsOf: Db<true>;
  pullTotals: Db<PullTally>;
  pullDays: Db<number>;
  pullBatches: Db<number>;
  pullBatchAge: Db<true>;
}

export interface EmbeddedPullsContext {
  dbs: EmbeddedPullsDbs;
  write<T>(what: string, action: () => T): Promise<T>;
  read<T>(what: string, action: () => T): Promise<T>;
}

function added(old: PullTally | undefined, count: number, last: number): PullTally {
  return { count: (old?.count ?? 0) + count, last: Math.max(old?.last ?? 0, last) };
}

export class EmbeddedPulls implements PullMetadata {
  private readonly db: EmbeddedPullsDbs;

  constructor(private readonly ctx: EmbeddedPullsContext) {
    this.db = ctx.dbs;
  }

  recordPulls(batch: PullBatch): Promise<void> {
    if (batch.entries.length === 0) return Promise.resolve();
    return this.ctx.write('pulls.recordPulls', () => {
      for (const entry of batch.entries) this.applyEntry(batch, entry);
      this.trim(batch);
    });
  }

  /** Inside the write transaction. */
  private applyEntry(batch: PullBatch, entry: PullBatchEntry): void {
    const { repo, day } = entry;
    const mark = `${batch.id}\0${repo}\0${dayPart(day)}`;
    if (this.db.pullBatches.get(key(mark)) !== undefined) return;
    this.db.pullBatches.put(key(mark), batch.now);
    this.db.pullBatchAge.put(ageKey(batch.now, mark), true);

    const credit = (tag: string, count: number, last: number) => {
      this.db.pullTotals.put(key(repo, tag), added(this.db.pullTotals.get(key(repo, tag)), count, last));
      const daily = key(dayPart(day), repo, tag);
      this.db.pullDays.put(daily, (this.db.pullDays.get(daily) ?? 0) + count);
    };
    let total = 0;
    let latest = 0;
    for (const t of entry.byTag) {
      credit(t.tag, t.count, t.last);
      total += t.count;
      latest = Math.max(latest, t.last);
    }
    for (const d of entry.byDigest) {
      const prefix = under(repo, d.digest);
      for (const k of this.db.tagsOf.getKeys(prefix)) credit(lastPart(k, prefix.start.length), d.count, d.last);
      total += d.count;
      latest = Math.max(latest, d.last);
    }
    if (total === 0) return;
    this.db.pullTotals.put(key(repo), added(this.db.pullTotals.get(key(repo)), total, latest));
    const daily = key(dayPart(day), repo);
    this.db.pullDays.put(daily, (this.db.pullDays.get(daily) ?? 0) + total);
  }

  /** Inside the write transaction: daily entries past keepDays and batch marks older than a day, a bounded number. */
  private trim(batch: PullBatch): void {
    const firstKept = Buffer.from(dayPart(dayOf(batch.now) - batch.keepDays + 1), 'utf8');
    let budget = TRIM_PER_FLUSH;
    for (const k of this.db.pullDays.getKeys({ end: firstKept, limit: budget })) {
      this.db.pullDays.remove(k);
      budget--;
    }
    for (const k of this.db.pullBatchAge.getKeys({ end: ageKey(batch.now - BATCH_MEMORY_MS, ''), limit: Math.max(budget, 1) })) {
      this.db.pullBatches.remove(k.subarray(6));
      this.db.pullBatchAge.remove(k);
    }
  }

  repositoryPulls(repo: string, range: SeriesRange): Promise<PullSeries> {
    return this.ctx.read('pulls.repositoryPulls', () => {
      const totals = this.db.pullTotals.get(key(repo));
      return {
        count: totals?.count ?? 0,
        ...(totals ? { last: totals.last } : {}),
        daily: daysOf(range).map((day) => ({ day, count: this.db.pullDays.get(key(dayPart(day), repo)) ?? 0 })),
      };
    });
  }

  tagSeries(repo: string, tag: string, range: SeriesRange): Promise<PullSeries> {
    return this.ctx.read('pulls.tagSeries', () => {
      const totals = this.db.pullTotals.get(key(repo, tag));
      return {
        count: totals?.count ?? 0,
        ...(totals ? { last: totals.last } : {}),
        daily: daysOf(range).map((day) => ({ day, count: this.db.pullDays.get(key(dayPart(day), repo, tag)) ?? 0 })),
      };
    });
  }

  tagPulls(repo: string, tags: string[]): Promise<Map<string, PullTally>> {
    return this.ctx.read('pulls.tagPulls', () => {
      const found = new Map<string, PullTally>();
      for (const tag of tags) {
        const tally = this.db.pullTotals.get(key(repo, tag));
        if (tally !== undefined) found.set(tag, tally);
      }
      return found;
    });
  }
}
