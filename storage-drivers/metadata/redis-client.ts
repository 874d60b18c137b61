// The ioredis client Berth's Redis store talks through: standalone, Sentinel or Cluster, TLS, and a
// reconnect policy that fails calls at once while Redis is away (so requests get a fast 503).
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConfig } from './redis-config.js';

export type RedisClient = Redis | Cluster;

export interface RedisStoreOptions extends RedisConfig {
  /** Connection name shown by CLIENT LIST. */
  connectionName?: string;
  /** The event log keeps about this many records, dropping the oldest (default 100000; see redis-events.ts). */
  eventLogMaxLength?: number;
  /** How long a repository stays in the events' pending index after its last writer joined (ms, default 60000). */
  eventPendingGraceMs?: number;
}

function tlsOptions(config: RedisConfig): ConnectionOptions | undefined {
  const t = config.tls;
  if (t === undefined) return undefined;
  return {
    rejectUnauthorized: t.rejectUnauthorized,
    ...(t.caFile === undefined ? {} : { ca: readFileSync(t.caFile) }),
    ...(t.certFile === undefined ? {} : { cert: readFileSync(t.certFile) }),
    ...(t.keyFile === undefined ? {} : { key: readFileSync(t.keyFile) }),
    ...(t.servername === undefined ? {} : { servername: t.servername }),
  };
}

/** Reconnect quickly and forever: Berth must recover by itself once Redis is back. */
function retryDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 5), 1000);
}

export function createRedisClient(config: RedisStoreOptions): RedisClient {
  const tls = tlsOptions(config);
  // No offline queue and no per-request retries: with Redis unreachable a call fails at once (→ 503)
  // instead of waiting for a reconnect; commandTimeout bounds a Redis that accepts but does not answer.
  const common: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    retryStrategy: retryDelay,
    ...(config.connectionName === undefined ? {} : { connectionName: config.connectionName }),
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(config.db === undefined ? {} : { db: config.db }),
    ...(tls === undefined ? {} : { tls }),
  };
  if (config.cluster !== undefined) {
    const nodes = config.cluster.nodes.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: url.port === '' ? 6379 : Number(url.port) };
    });
    const anyTls = config.cluster.nodes.some((u) => u.startsWith('rediss:'));
    const options: ClusterOptions = {
      enableOfflineQueue: false,
      clusterRetryStrategy: retryDelay,
      redisOptions: { ...common, ...(anyTls && tls === undefined ? { tls: {} } : {}) },
    };
    return new Cluster(nodes, options);
  }
  if (config.sentinel !== undefined) {
    const s = config.sentinel;
    return new Redis({
      ...common,
      name: s.name,
      sentinels: s.sentinels,
      ...(s.username === undefined ? {} : { sentinelUsername: s.username }),
      ...(s.password === undefined ? {} : { sentinelPassword: s.password }),
      ...(tls === undefined ? {} : { enableTLSForSentinelMode: true }),
      sentinelRetryStrategy: retryDelay,
    });
  }
  return new Redis(config.url ?? 'redis://127.0.0.1:6379', common);
}
