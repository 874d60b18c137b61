import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import type { RetentionMetadata, UntaggedPage } from './retention-types.js';

/*
 * The retention runner's records in Redis (P = keyPrefix):
 *   P{retention}:state     string: the runner's JSON state
 * and, read only, garbage collection's P{repo:<r>}:untagged hash (digest → ms a tag last left it),
 * walked with HSCAN so a repository with many untagged manifests is read a page at a time.
 */

export interface RedisRetentionContext {
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  run<T>(what: string, action: () => Promise<T>): Promise<T>;
}

export class RedisRetention implements RetentionMetadata {
  constructor(private readonly ctx: RedisRetentionContext) {}

  loadState(): Promise<string | undefined> {
    return this.ctx.run('retention.loadState', async () => (await this.ctx.client.get(this.ctx.keys.retention('state'))) ?? undefined);
  }

  saveState(state: string): Promise<void> {
    return this.ctx.run('retention.saveState', async () => {
      await this.ctx.client.set(this.ctx.keys.retention('state'), state);
    });
  }

  untagged(repo: string, cursor: string | undefined, count: number): Promise<UntaggedPage> {
    return this.ctx.run('retention.untagged', async () => {
      const [next, flat] = await this.ctx.client.hscan(this.ctx.keys.repo(repo, 'untagged'), cursor ?? '0', 'COUNT', Math.max(1, count));
      const page: UntaggedPage = { entries: [] };
      for (let i = 0; i + 1 < flat.length; i += 2) page.entries.push({ digest: flat[i] as string, untaggedAt: Number(flat[i + 1]) });
      if (next !== '0') page.next = next;
      return page;
    });
  }
}
