import type { Cluster, Redis } from 'ioredis';
import { OciError } from '../errors/oci-error.js';

/**
 * Where login attempts are counted. Every operation touches one key only, so the Redis
 * implementation works on Redis Cluster without hash tags. Times are ms since the epoch and come
 * from the caller, so one injectable clock drives expiry in every implementation.
 */
export interface LoginCounterStore {
  /**
   * Atomically adds attempt `id` to `key` unless `limit` attempts already lie within the last
   * `windowMs`. Returns 0 when the slot was taken, otherwise the ms until one frees up (> 0).
   */
  reserve(key: string, id: string, limit: number, windowMs: number, now: number): Promise<number>;
  /** Gives back a slot taken by reserve (the attempt succeeded or was never checked). */
  release(key: string, id: string): Promise<void>;
  /** Forgets every attempt under `key`. */
  clear(key: string): Promise<void>;
  /** Remembers that `key` happened at `now`, for `ttlMs`. */
  mark(key: string, now: number, ttlMs: number): Promise<void>;
  /** Whether `key` was marked within the last `ttlMs`. */
  marked(key: string, now: number, ttlMs: number): Promise<boolean>;
}

const MAX_TRACKED = 100_000;

/** One process's counters. Bounded: past MAX_TRACKED keys the stalest are forgotten. */
export class MemoryLoginCounters implements LoginCounterStore {
  private readonly attempts = new Map<string, Array<{ id: string; at: number }>>();
  private readonly marks = new Map<string, number>();

  async reserve(key: string, id: string, limit: number, windowMs: number, now: number): Promise<number> {
    // No await before the write: check and add happen in one turn of the event loop, so they are atomic.
    const cutoff = now - windowMs;
    const list = (this.attempts.get(key) ?? []).filter((a) => a.at > cutoff).sort((a, b) => a.at - b.at);
    if (list.length >= limit) {
      this.attempts.set(key, list);
      return (list[list.length - limit] as { at: number }).at + windowMs - now;
    }
    list.push({ id, at: now });
    touch(this.attempts, key, list);
    return 0;
  }

  async release(key: string, id: string): Promise<void> {
    const list = this.attempts.get(key);
    if (!list) return;
    const rest = list.filter((a) => a.id !== id);
    if (rest.length === 0) this.attempts.delete(key);
    else this.attempts.set(key, rest);
  }

  async clear(key: string): Promise<void> {
    this.attempts.delete(key);
  }

  async mark(key: string, now: number): Promise<void> {
    touch(this.marks, key, now);
  }

  async marked(key: string, now: number, ttlMs: number): Promise<boolean> {
    const at = this.marks.get(key);
    if (at === undefined) return false;
    if (at > now - ttlMs) return true;
    this.marks.delete(key);
    return false;
  }
}

/** Re-inserts so Map order is least recently written first, and evicts from the front past the bound. */
function touch<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_TRACKED) {
    const first = map.keys().next().value;
    if (first !== undefined) map.delete(first);
  }
}

// A sorted set per key: score = attempt time, member = attempt id. Expired members are dropped first,
// so the count is of the current window; PEXPIRE lets an idle key vanish by itself.
const RESERVE = `
local cutoff = tonumber(ARGV[1]) - tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local n = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[3])
if n >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + tonumber(ARGV[2]) - tonumber(ARGV[1]))
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
`;

type RedisClient = Redis | Cluster;
type ReserveCommand = (key: string, now: number, windowMs: number, limit: number, id: string) => Promise<number>;

/**
 * Counters shared by every Berth process on one Redis (or Redis Cluster): keys
 * `<keyPrefix>login:<key>`, one key per command or script. Redis being unreachable fails the login
 * with 503 rather than letting attempts through uncounted.
 */
export class RedisLoginCounters implements LoginCounterStore {
  private readonly reserveCommand: ReserveCommand;

  constructor(
    private readonly client: RedisClient,
    private readonly keyPrefix: string,
  ) {
    client.defineCommand('berthLoginReserve', { numberOfKeys: 1, lua: RESERVE });
    const fn = (client as unknown as Record<'berthLoginReserve', ReserveCommand>).berthLoginReserve;
    this.reserveCommand = fn.bind(client);
  }

  private key(key: string): string {
    return `${this.keyPrefix}login:${key}`;
  }

  private async run<T>(action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new OciError('UNAVAILABLE', `login attempt counters (redis) unavailable, try again later: ${reason}`, undefined, { 'Retry-After': '1' });
    }
  }

  reserve(key: string, id: string, limit: number, windowMs: number, now: number): Promise<number> {
    return this.run(async () => Number(await this.reserveCommand(this.key(key), now, windowMs, limit, id)));
  }

  release(key: string, id: string): Promise<void> {
    return this.run(async () => {
      await this.client.zrem(this.key(key), id);
    });
  }

  clear(key: string): Promise<void> {
    return this.run(async () => {
      await this.client.del(this.key(key));
    });
  }

  mark(key: string, now: number, ttlMs: number): Promise<void> {
    return this.run(async () => {
      await this.client.set(this.key(key), String(now), 'PX', ttlMs);
    });
  }

  marked(key: string, now: number, ttlMs: number): Promise<boolean> {
    return this.run(async () => {
      const at = await this.client.get(this.key(key));
      return at !== null && Number(at) > now - ttlMs;
    });
  }
}
