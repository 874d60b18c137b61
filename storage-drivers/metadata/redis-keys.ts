import { PER_REPO_KEYS } from './redis-scripts.js';
import type { Digest } from './types.js';

/**
 * Every key name of the Redis store, built in one place (the layout is drawn in redis.ts). Keys that a
 * script changes together share a Cluster hash tag: `{repo:<name>}`, `{blob:<digest>}`, `{uploads}`, `{gc}`, `{retention}`.
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

  retention(kind: 'state'): string {
    return `${this.prefix}{retention}:${kind}`;
  }
}
