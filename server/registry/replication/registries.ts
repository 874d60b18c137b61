import { readFileSync } from 'node:fs';
import { ConfigError } from '../../config.js';
import { readSecrets, withSecrets } from '../remote-registry-secrets.js';
import type { RemoteRegistryConnection } from '../remote-registry-http.js';

/*
 * The registries replication rules name (`replication.registries[]`), resolved once at start-up the
 * way proxy upstreams are: the password read from its file or variable and kept off the enumerable
 * properties (so logging or JSON.stringify of a registry never shows it), the CA file read.
 */

/** One `replication.registries[]` entry as the config schema outputs it (defaults applied). */
export interface RegistryEntry {
  name: string;
  urls: readonly string[];
  username?: string | undefined;
  passwordFile?: string | undefined;
  passwordEnv?: string | undefined;
  timeoutSeconds: number;
  maxConcurrent: number;
  requestsPerSecond: number;
  maxWaitSeconds: number;
  caFile?: string | undefined;
}

export interface ResolvedRegistry extends RemoteRegistryConnection {
  readonly name: string;
}

export interface ResolveRegistryOptions {
  env?: NodeJS.ProcessEnv | undefined;
  /** Reads password and CA files; tests may read from elsewhere. */
  readFile?: ((path: string) => string) | undefined;
}

/** One entry resolved, or undefined with its problems pushed onto `problems` (`key` is where it sits in the config). */
export function resolveRegistry(entry: RegistryEntry, key: string, options: ResolveRegistryOptions, problems: string[]): ResolvedRegistry | undefined {
  const env = options.env ?? process.env;
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const where = (field: string) => `${key}.${field} (registry ${JSON.stringify(entry.name)})`;
  const secrets = readSecrets(entry, where, { env, readFile }, problems);
  if (!secrets) return undefined;
  const registry = {
    name: entry.name,
    urls: Object.freeze(entry.urls.map((url) => url.replace(/\/+$/, ''))),
    username: entry.username,
    timeoutMs: Math.round(entry.timeoutSeconds * 1000),
    maxConcurrent: entry.maxConcurrent,
    requestsPerSecond: entry.requestsPerSecond,
    maxWaitMs: Math.round(entry.maxWaitSeconds * 1000),
  };
  return withSecrets<typeof registry, ResolvedRegistry>(registry, secrets);
}

/**
 * Resolves every entry (those `used` keeps, when given: the problems still name each by its place in
 * the list); throws a ConfigError with one line per problem (naming the file or variable, never a password).
 */
export function resolveRegistries(
  entries: readonly RegistryEntry[],
  options: ResolveRegistryOptions = {},
  used: (entry: RegistryEntry) => boolean = () => true,
): ResolvedRegistry[] {
  const problems: string[] = [];
  const out: ResolvedRegistry[] = [];
  entries.forEach((entry, i) => {
    if (!used(entry)) return;
    const registry = resolveRegistry(entry, `replication.registries.${i}`, options, problems);
    if (registry) out.push(registry);
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}
