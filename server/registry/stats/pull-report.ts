import { DAY_MS, type PullSeries } from '../../../storage-drivers/metadata/pull-types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { OciError } from '../../../errors/oci-error.js';
import { assertRepositoryKnown } from '../repositories.js';

/** What the pulls API answers and `berth pulls --json` prints: the same reading of the store. */

export interface DailyCount {
  /** UTC day, YYYY-MM-DD. */
  date: string;
  count: number;
}

export interface TagPullTotals {
  tag: string;
  count: number;
  /** ISO 8601, or null when never pulled. */
  lastPulled: string | null;
}

export interface RepositoryPullReport {
  repository: string;
  count: number;
  lastPulled: string | null;
  days: number;
  daily: DailyCount[];
  /** One page of the repository's current tags, in tag order. */
  tags: TagPullTotals[];
  /** Set when more tags follow: pass it as `last` for the next page. */
  nextLast?: string;
}

export interface TagPullReport {
  repository: string;
  tag: string;
  count: number;
  lastPulled: string | null;
  days: number;
  daily: DailyCount[];
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function daily(series: PullSeries): DailyCount[] {
  return series.daily.map((d) => ({ date: new Date(d.day * DAY_MS).toISOString().slice(0, 10), count: d.count }));
}

export interface RepositoryReportOptions {
  days: number;
  now: number;
  /** Tags per page; undefined: all of them. */
  n: number | undefined;
  last: string | undefined;
}

/** NAME_UNKNOWN for a repository nothing was ever pushed to. */
export async function repositoryPullReport(metadata: MetadataStore, repo: string, options: RepositoryReportOptions): Promise<RepositoryPullReport> {
  await assertRepositoryKnown(metadata, repo);
  const { n, last } = options;
  const page = n === 0 ? [] : await metadata.listTags(repo, { n: n === undefined ? undefined : n + 1, last });
  const tags = n === undefined ? page : page.slice(0, n);
  const [series, totals] = await Promise.all([metadata.pulls.repositoryPulls(repo, options), metadata.pulls.tagPulls(repo, tags)]);
  const report: RepositoryPullReport = {
    repository: repo,
    count: series.count,
    lastPulled: iso(series.last),
    days: options.days,
    daily: daily(series),
    tags: tags.map((tag) => {
      const t = totals.get(tag);
      return { tag, count: t?.count ?? 0, lastPulled: iso(t?.last) };
    }),
  };
  if (n !== undefined && page.length > n && tags.length > 0) report.nextLast = tags[tags.length - 1] as string;
  return report;
}

/** NAME_UNKNOWN for an unknown repository; MANIFEST_UNKNOWN for a tag that is not there and was never pulled. */
export async function tagPullReport(metadata: MetadataStore, repo: string, tag: string, range: { days: number; now: number }): Promise<TagPullReport> {
  await assertRepositoryKnown(metadata, repo);
  const [series, digest] = await Promise.all([metadata.pulls.tagSeries(repo, tag, range), metadata.resolveTag(repo, tag)]);
  if (digest === undefined && series.last === undefined) {
    throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} is not in repository ${repo} and was never pulled`);
  }
  return { repository: repo, tag, count: series.count, lastPulled: iso(series.last), days: range.days, daily: daily(series) };
}
