import { after, key, lastPart, under, type Db } from './embedded-keys.js';
import type { ArtifactEntry, ReplicationMetadata, VersionedState } from './replication-types.js';

/*
 * The embedded store's replication records (sub-databases of the same lmdb environment; every change
 * is one action of the group commit, so the compare-and-set runs under the write lock):
 *   replState      rule              → { revision, state }
 *   replArtifacts  rule \0 key       → the artifact record (keys hold no NUL, so a rule's range is
 *                                      exactly its own records, in byte order of the key)
 */

export interface EmbeddedReplicationDbs {
  replState: Db<VersionedState>;
  replArtifacts: Db<string>;
}

export interface EmbeddedReplicationContext {
  dbs: EmbeddedReplicationDbs;
  write<T>(what: string, action: () => T): Promise<T>;
  read<T>(what: string, action: () => T): Promise<T>;
}

export class EmbeddedReplication implements ReplicationMetadata {
  private readonly db: EmbeddedReplicationDbs;

  constructor(private readonly ctx: EmbeddedReplicationContext) {
    this.db = ctx.dbs;
  }

  getRuleState(rule: string): Promise<VersionedState | undefined> {
    return this.ctx.read('replication.getRuleState', () => this.db.replState.get(key(rule)));
  }

  updateRuleState(rule: string, expectedRevision: number, state: string): Promise<boolean> {
    return this.ctx.write('replication.updateRuleState', () => {
      const revision = this.db.replState.get(key(rule))?.revision ?? 0;
      if (revision !== expectedRevision) return false;
      this.db.replState.put(key(rule), { revision: revision + 1, state });
      return true;
    });
  }

  getArtifacts(rule: string, keys: readonly string[]): Promise<(string | undefined)[]> {
    return this.ctx.read('replication.getArtifacts', () => keys.map((k) => this.db.replArtifacts.get(key(rule, k))));
  }

  putArtifact(rule: string, artifact: string, value: string | undefined): Promise<void> {
    return this.ctx.write('replication.putArtifact', () => {
      if (value === undefined) this.db.replArtifacts.remove(key(rule, artifact));
      else this.db.replArtifacts.put(key(rule, artifact), value);
    });
  }

  listArtifacts(rule: string, page: { after?: string | undefined; limit: number }): Promise<ArtifactEntry[]> {
    return this.ctx.read('replication.listArtifacts', () => {
      if (page.limit <= 0) return [];
      const range = under(rule);
      const start = page.after === undefined ? range.start : after(rule, page.after);
      return Array.from(this.db.replArtifacts.getRange({ start, end: range.end, limit: page.limit }), ({ key: k, value }) => ({
        key: lastPart(k, range.start.length),
        value,
      }));
    });
  }

  clearRule(rule: string): Promise<number> {
    return this.ctx.write('replication.clearRule', () => {
      let removed = 0;
      for (const k of this.db.replArtifacts.getKeys(under(rule))) {
        this.db.replArtifacts.remove(k);
        removed += 1;
      }
      this.db.replState.remove(key(rule));
      return removed;
    });
  }
}
