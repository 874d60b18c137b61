import { readFileSync } from 'node:fs';
import { ConfigError } from '../../config.js';
import type { ProxyConfig, UpstreamConfig } from './config.js';
import { readSecrets, withSecrets } from '../remote-registry-secrets.js';
import type { RemoteRegistryConnection } from '../remote-registry-http.js';

/*
 * The upstreams of the configuration, resolved once at start-up: the password read from its file or
 * variable, the CA file read. The password is kept off the object's enumerable properties, so logging,
 * JSON.stringify or util.inspect of an upstream never shows it.
 */

export interface ResolvedUpstream extends RemoteRegistryConnection {
  readonly namespace: string;
  /** Lower-cased. */
  readonly hosts: readonly string[];
  readonly libraryPrefix: boolean;
  readonly tagTtlMs: number;
}

export interface ResolveUpstreamOptions {
  env?: NodeJS.ProcessEnv | undefined;
  /** Reads password and CA files; tests may read from elsewhere. */
  readFile?: ((path: string) => string) | undefined;
}

function resolveOne(
  config: UpstreamConfig,
  key: string,
  sources: Required<{ [K in keyof ResolveUpstreamOptions]: NonNullable<ResolveUpstreamOptions[K]> }>,
  problems: string[],
): ResolvedUpstream | undefined {
  const where = (field: string) => `${key}.${field} (upstream ${JSON.stringify(config.namespace)})`;
  const secrets = readSecrets(config, where, sources, problems);
  if (!secrets) return undefined;
  const upstream = {
    namespace: config.namespace,
    urls: Object.freeze(config.urls.map((url) => url.replace(/\/+$/, ''))),
    hosts: Object.freeze(config.hosts.map((host) => host.toLowerCase())),
    libraryPrefix: config.libraryPrefix,
    username: config.username,
    tagTtlMs: config.tagTtlSeconds * 1000,
    timeoutMs: Math.round(config.timeoutSeconds * 1000),
    maxConcurrent: config.maxConcurrent,
    requestsPerSecond: config.requestsPerSecond,
    maxWaitMs: Math.round(config.maxWaitSeconds * 1000),
  };
  return withSecrets<typeof upstream, ResolvedUpstream>(upstream, secrets);
}

/**
 * Resolves every configured upstream. Throws a ConfigError with one line per problem, each naming the
 * upstream and the file or variable that is missing (never a password).
 */
export function resolveUpstreams(proxy: Pick<ProxyConfig, 'upstreams'>, options: ResolveUpstreamOptions = {}): ResolvedUpstream[] {
  const sources = {
    env: options.env ?? process.env,
    readFile: options.readFile ?? ((path: string) => readFileSync(path, 'utf8')),
  };
  const problems: string[] = [];
  const out: ResolvedUpstream[] = [];
  proxy.upstreams.forEach((config, i) => {
    const upstream = resolveOne(config, `proxy.upstreams.${i}`, sources, problems);
    if (upstream) out.push(upstream);
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}
