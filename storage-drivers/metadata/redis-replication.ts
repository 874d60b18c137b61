import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import { PER_RULE_KEYS, REPLICATION_SCRIPTS, type ReplicationScriptName } from './redis-replication-scripts.js';
import type { ArtifactEntry, ReplicationMetadata, VersionedState } from './replication-types.js';

/*
 * Replication's records in Redis (P = keyPrefix), all of a rule under its `{repl:<rule>}` hash tag, so
 * the compare-and-set and a record with its place in the order change in one script, on Cluster too:
 *
 *   P{repl:<r>}:state     hash { rev, data }: the rule's status document and its revision
 *   P{repl:<r>}:records   hash key → artifact record
 *   P{repl:<r>}:order     zset, score 0, member key: ZRANGEBYLEX lists the keys in byte order, paged by `after`
 */

type ScriptRunner = (...args: (string | number)[]) => Promise<unknown>;

export interface RedisReplicationContext {
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  run<T>(what: string, action: () => Promise<T>): Promise<T>;
}

export class RedisReplication implements ReplicationMetadata {
  constructor(private readonly ctx: RedisReplicationContext) {
    for (const [name, lua] of Object.entries(REPLICATION_SCRIPTS)) {
      ctx.client.defineCommand(name, { lua: lua.source, numberOfKeys: lua.keys });
    }
  }

  private script(name: ReplicationScriptName): ScriptRunner {
    const fn = (this.ctx.client as unknown as Record<ReplicationScriptName, ScriptRunner>)[name];
    return fn.bind(this.ctx.client);
  }

  private ruleKeys(rule: string): string[] {
    return PER_RULE_KEYS.map((kind) => this.ctx.keys.replication(rule, kind));
  }

  getRuleState(rule: string): Promise<VersionedState | undefined> {
    return this.ctx.run('replication.getRuleState', async () => {
      const [rev, data] = await this.ctx.client.hmget(this.ctx.keys.replication(rule, 'state'), 'rev', 'data');
      if (rev === null || rev === undefined || data === null || data === undefined) return undefined;
      return { revision: Number(rev), state: data };
    });
  }

  updateRuleState(rule: string, expectedRevision: number, state: string): Promise<boolean> {
    return this.ctx.run(
      'replication.updateRuleState',
      async () => (await this.script('berthReplUpdateState')(...this.ruleKeys(rule), String(expectedRevision), state)) === 1,
    );
  }

  getArtifacts(rule: string, keys: readonly string[]): Promise<(string | undefined)[]> {
    return this.ctx.run('replication.getArtifacts', async () => {
      if (keys.length === 0) return [];
      const values = await this.ctx.client.hmget(this.ctx.keys.replication(rule, 'records'), ...keys);
      return values.map((v) => v ?? undefined);
    });
  }

  putArtifact(rule: string, key: string, value: string | undefined): Promise<void> {
    return this.ctx.run('replication.putArtifact', async () => {
      await this.script('berthReplPutArtifact')(...this.ruleKeys(rule), key, value === undefined ? '0' : '1', value ?? '');
    });
  }

  listArtifacts(rule: string, page: { after?: string | undefined; limit: number }): Promise<ArtifactEntry[]> {
    return this.ctx.run('replication.listArtifacts', async () => {
      if (page.limit <= 0) return [];
      const start = page.after === undefined ? '-' : `(${page.after}`;
      const flat = (await this.script('berthReplListArtifacts')(...this.ruleKeys(rule), start, String(Math.floor(page.limit)))) as string[];
      const entries: ArtifactEntry[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) entries.push({ key: flat[i] as string, value: flat[i + 1] as string });
      return entries;
    });
  }

  clearRule(rule: string): Promise<number> {
    return this.ctx.run('replication.clearRule', async () => Number(await this.script('berthReplClearRule')(...this.ruleKeys(rule))));
  }
}
