import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import { summarizeRepository, type RepositorySummary } from './repository-summary.js';

export interface SummaryCacheOptions {
  /** Summaries kept; the least recently used goes first. */
  maxEntries: number;
  /** How long a summary is trusted: changes made by other processes show up after at most this long. */
  ttlMs: number;
  now: () => number;
  /** Repositories summarized at once on a miss (a Redis store answers them in parallel). */
  concurrency?: number;
}

interface Entry {
  summary: RepositorySummary;
  at: number;
}

/**
 * Per-process repository summaries for the management API's repository list, so that sorting
 * 10,000 repositories by size does not walk every manifest on every request. This process's own
 * pushes, deletes and tag moves drop the repository's entry (`invalidate`); everything else (other
 * processes, retention, pull counts) shows up once the entry is older than `ttlMs`.
 */
export class RepositorySummaryCache {
  private readonly entries = new Map<string, Entry>();
  /**
   * Bumped per repository on invalidate: a summary read before a change is not stored after it. One
   * number per repository this process changed; kept past eviction so an in-flight read still sees it.
   */
  private readonly generations = new Map<string, number>();

  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: SummaryCacheOptions,
  ) {}

  invalidate(repo: string): void {
    this.entries.delete(repo);
    this.generations.set(repo, (this.generations.get(repo) ?? 0) + 1);
  }

  async get(repo: string): Promise<RepositorySummary> {
    const now = this.options.now();
    const hit = this.entries.get(repo);
    if (hit !== undefined && now - hit.at < this.options.ttlMs) {
      // Re-inserted: Map order is the eviction order.
      this.entries.delete(repo);
      this.entries.set(repo, hit);
      return hit.summary;
    }
    const generation = this.generations.get(repo);
    const summary = await summarizeRepository(this.metadata, repo, now);
    if (this.generations.get(repo) === generation) this.store(repo, { summary, at: now });
    return summary;
  }

  /** Summaries of `repos` in the same order, misses read `concurrency` at a time. */
  async getMany(repos: string[]): Promise<RepositorySummary[]> {
    const out = new Array<RepositorySummary>(repos.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < repos.length; i = next++) out[i] = await this.get(repos[i] as string);
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 16, repos.length) }, worker));
    return out;
  }

  private store(repo: string, entry: Entry): void {
    this.entries.delete(repo);
    this.entries.set(repo, entry);
    while (this.entries.size > this.options.maxEntries) {
      this.entries.delete(this.entries.keys().next().value as string);
    }
  }
}
