/*
 * What replication keeps in the metadata store, shared by every process:
 *   - per rule, one status document (JSON: the last runs, the reconcile cursor, counts), changed by
 *     compare-and-set on its revision, so two processes finishing work on one rule never lose an update;
 *   - per rule, one record per artifact (key `<target repository>:<tag>`, value JSON: the digest the
 *     rule last made the target's tag point at, its state, when the source changed, the last error).
 *     The digest tells a tag the rule moved itself (a source tag moved: follow it) from one changed on
 *     the target by someone else (a conflict, settled by the rule's policy).
 * Runs are fenced with acquireLease (`replication:<rule>`), not here.
 */

export interface VersionedState {
  /** 1 for the first stored document, then one more per update. */
  revision: number;
  state: string;
}

export interface ArtifactEntry {
  key: string;
  value: string;
}

export interface ReplicationMetadata {
  getRuleState(rule: string): Promise<VersionedState | undefined>;
  /** Stores `state` when the stored revision is `expectedRevision` (0: nothing stored yet); false, changing nothing, otherwise. */
  updateRuleState(rule: string, expectedRevision: number, state: string): Promise<boolean>;
  /** The records of `keys`, in the same order (undefined where none). */
  getArtifacts(rule: string, keys: readonly string[]): Promise<(string | undefined)[]>;
  /** Stores (a string) or removes (undefined) one artifact record. */
  putArtifact(rule: string, key: string, value: string | undefined): Promise<void>;
  /** Records in key order (bytewise), after `after`, at most `limit`. */
  listArtifacts(rule: string, page: { after?: string | undefined; limit: number }): Promise<ArtifactEntry[]>;
  /** Removes everything kept for the rule (a rule removed from the configuration); returns how many records went. */
  clearRule(rule: string): Promise<number>;
}
