import { after, key, lastPart, under, type Db } from './embedded-keys.js';
import type { RetentionMetadata, UntaggedPage } from './retention-types.js';

/*
 * The embedded store's retention records:
 *   retention  'state'           → the runner's JSON state
 * and, read only, garbage collection's `untagged` (repo \0 digest → ms a tag last left it).
 */

export interface EmbeddedRetentionContext {
  retention: Db<string>;
  untagged: Db<number>;
  write<T>(what: string, action: () => T): Promise<T>;
  read<T>(what: string, action: () => T): Promise<T>;
}

export class EmbeddedRetention implements RetentionMetadata {
  constructor(private readonly ctx: EmbeddedRetentionContext) {}

  loadState(): Promise<string | undefined> {
    return this.ctx.read('retention.loadState', () => this.ctx.retention.get(key('state')));
  }

  saveState(state: string): Promise<void> {
    return this.ctx.write('retention.saveState', () => {
      this.ctx.retention.put(key('state'), state);
    });
  }

  untagged(repo: string, cursor: string | undefined, count: number): Promise<UntaggedPage> {
    return this.ctx.read('retention.untagged', () => {
      const range = under(repo);
      const start = cursor === undefined ? range.start : after(repo, cursor);
      const page: UntaggedPage = { entries: [] };
      const limit = Math.max(1, count);
      for (const { key: k, value } of this.ctx.untagged.getRange({ start, end: range.end, limit: limit + 1 })) {
        if (page.entries.length === limit) {
          page.next = page.entries[page.entries.length - 1]!.digest;
          break;
        }
        page.entries.push({ digest: lastPart(k, range.start.length), untaggedAt: value });
      }
      return page;
    });
  }
}
