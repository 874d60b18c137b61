import type { Digest } from './types.js';

/** A manifest that lost a tag, and when it last did (garbage collection's untagged note). */
export interface UntaggedEntry {
  digest: Digest;
  untaggedAt: number;
}

export interface UntaggedPage {
  entries: UntaggedEntry[];
  /** Pass it back for the next page; absent once the listing is done. */
  next?: string;
}

/**
 * What the retention runner keeps in the metadata store, shared by every process: its cursor (the
 * last repository a run finished, so the next run, in any process, goes on after it) and the last
 * runs' outcome, as one JSON document. Repositories are fenced with acquireLease, not here.
 */
export interface RetentionMetadata {
  loadState(): Promise<string | undefined>;
  saveState(state: string): Promise<void>;
  /**
   * The manifests of `repo` that ever lost a tag, with the time they last did, a page at a time (in no
   * particular order; `count` is a hint). Some may be tagged again since: deleteManifestIfUnused checks.
   */
  untagged(repo: string, cursor: string | undefined, count: number): Promise<UntaggedPage>;
}
