import { PER_REPO_KEYS } from './redis-scripts.js';
import type { Digest } from './types.js';

/**
 * Every key name of the Redis store, built in one place (the layout is drawn in redis.ts). Keys that a
 * script changes together share a Cluster hash tag: `{repo:<name>}`, `{blob:<digest>}`, `{uploads}`, `{gc}`,
 * `{ns:<namespace>}`, `{quotas}`, `{retention}`, `{repl:<rule>}`, `{events}`. Pull statistics are the repository's own keys
 * (`{repo:<name>}`), so one flush script reads its tags too. So is the event outbox (`{repo:<name>}:outbox`):
 * a change's script XADDs its record there; relay moves records to the `{events}` log in a second step
 * (redis-events.ts), guided by the `{events}:pending` index that writers join before their script.
 */
export class RedisKeys {
  constructor(private readonly prefix: string) {}

  repo(repo: string, kind: string): string {
    return `${this.prefix}{repo:${repo}}:${kind}`;
  }

  /** The per-repository keys in the KEYS order every repository script expects. */
  repoKeys(repo: string): string[] {
    return PER_REPO_KEYS.map((kind) => this.repo(repo, kind));
  }

  /** Pull statistics (redis-pulls.ts): the totals, the per-tag totals, one day's counts, a flush already applied. */
  pulls(repo: string, kind: 'total' | 'tags'): string {
    return this.repo(repo, kind === 'total' ? 'pulls' : 'pulltags');
  }

  pullDay(repo: string, day: number): string {
    return this.repo(repo, `pullday:${day}`);
  }

  pullBatch(repo: string, batchId: string, day: number): string {
    return this.repo(repo, `pullbatch:${batchId}:${day}`);
  }

  /** A repository's event outbox stream (KEYS[11] of the repository scripts). */
  outbox(repo: string): string {
    return this.repo(repo, 'outbox');
  }

  /**
   * The event log and its shared records, one Cluster slot (redis-events.ts): the pending index of
   * repositories whose outbox may hold records, the log stream, its seq counter, the last outbox id
   * relayed per repository, and the endpoints' delivery state.
   */
  events(kind: 'pending' | 'log' | 'seq' | 'relayed' | 'endpoints'): string {
    return `${this.prefix}{events}:${kind}`;
  }

  /** An endpoint's dead letters: the ids (zset, score 0, lex order = age) and the letters (hash id → JSON). */
  deadLetters(endpoint: string, kind: 'ids' | 'letters'): string {
    return `${this.prefix}{events}:${kind === 'ids' ? 'dead' : 'letters'}:${endpoint}`;
  }

  catalog(): string {
    return `${this.prefix}catalog`;
  }

  blob(digest: Digest, kind: 'repos' | 'missing' | 'touch' | 'gc' | 'pins'): string {
    return `${this.prefix}{blob:${digest}}:${kind}`;
  }

  lease(name: string): string {
    return `${this.prefix}{lease:${name}}`;
  }

  upload(id: string): string {
    return `${this.prefix}{uploads}:s:${id}`;
  }

  uploadAge(): string {
    return `${this.prefix}{uploads}:age`;
  }

  gc(kind: 'queue' | 'tokens' | 'complete'): string {
    return `${this.prefix}{gc}:${kind}`;
  }

  /** A namespace's quota record (redis-quotas.ts); a rebuild writes the `new-…` keys, then swaps them in. */
  namespace(ns: string, kind: 'usage' | 'sizes' | 'holders' | 'reserved' | 'new-sizes' | 'new-holders'): string {
    return `${this.prefix}{ns:${ns}}:${kind}`;
  }

  /** Every namespace that ever had a quota record. */
  quotaNamespaces(): string {
    return `${this.prefix}{quotas}:namespaces`;
  }

  /** The retention runner's shared state (redis-retention.ts). */
  retention(kind: 'state'): string {
    return `${this.prefix}{retention}:${kind}`;
  }

  /** A replication rule's status document and artifact records (redis-replication.ts). */
  replication(rule: string, kind: 'state' | 'records' | 'order'): string {
    return `${this.prefix}{repl:${rule}}:${kind}`;
  }
}
