import type { Digest } from './types.js';

/*
 * Pull statistics in the metadata store (see docs/pull-statistics.md). Serving processes aggregate
 * manifest GETs in memory and flush them here in batches; every flush of a repository is one atomic
 * step (a Lua script under the repository's hash tag in Redis, one transaction in the embedded store):
 *
 *  - per repository: a total (count, last pulled) and, per UTC day, a count;
 *  - per tag: a total (count, last pulled) and, per UTC day, a count.
 *
 * A pull by digest is credited, in that same step, to every tag that then points at the digest, so the
 * containerd / Kubernetes pattern (HEAD by tag, GET by digest) counts for the tag. The repository's
 * count takes each pull once, however many tags share the digest.
 * Daily counts are kept `keepDays` days (today included): Redis keys expire, embedded entries are
 * trimmed a bounded number per flush.
 */

export const DAY_MS = 86_400_000;

/** The UTC day of a time: whole days since the epoch. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

export interface PullTally {
  count: number;
  /** ms since epoch of the latest pull counted. */
  last: number;
}

export interface TagPulls extends PullTally {
  tag: string;
}

export interface DigestPulls extends PullTally {
  digest: Digest;
}

/** What one repository received on one UTC day since the last flush. */
export interface PullBatchEntry {
  repo: string;
  day: number;
  byTag: TagPulls[];
  byDigest: DigestPulls[];
}

export interface PullBatch {
  /**
   * Unique per batch. Recording a batch again under the same id (a retry after an answer was lost)
   * changes nothing for the repositories it already reached; ids are remembered for a day.
   */
  id: string;
  entries: PullBatchEntry[];
  /** Daily counts are kept this many days, today included. */
  keepDays: number;
  now: number;
}

export interface DailyPulls {
  day: number;
  count: number;
}

export interface PullSeries {
  count: number;
  /** ms since epoch; absent when never pulled. */
  last?: number;
  /** One element per day, oldest first, ending today (days without pulls have count 0). */
  daily: DailyPulls[];
}

export interface SeriesRange {
  /** Days asked for, today included. */
  days: number;
  now: number;
}

export interface PullMetadata {
  /** Applies one flush: each entry atomically, crediting pulls by digest to the tags that point at it now. */
  recordPulls(batch: PullBatch): Promise<void>;
  /** The repository's totals and its daily series. */
  repositoryPulls(repo: string, range: SeriesRange): Promise<PullSeries>;
  /** A tag's totals and daily series (zeros when never pulled). */
  tagSeries(repo: string, tag: string, range: SeriesRange): Promise<PullSeries>;
  /** Totals of each tag that was ever pulled (tags never pulled are absent); one round trip per few thousand tags. */
  tagPulls(repo: string, tags: string[]): Promise<Map<string, PullTally>>;
}

/** The days of a range, oldest first. */
export function daysOf(range: SeriesRange): number[] {
  const today = dayOf(range.now);
  return Array.from({ length: range.days }, (_, i) => today - range.days + 1 + i);
}
