// The enabled rules built with their two sides, from the configuration and this Berth's side: what a
// server's ReplicationService runs, and what `berth replication run` runs in its own process.
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import type { BerthConfig } from '../../config.js';
import type { ReplicationEndpoint } from './endpoint.js';
import type { LocalEndpoint } from './local.js';
import { resolveRegistries } from './registries.js';
import { RemoteEndpoint } from './remote.js';
import { compileRule, type ReplicationRule } from './rules.js';
import type { RuleRuntime } from './service.js';
import { copyOptionsOf, RuleSync } from './sync.js';
import { BandwidthLimit } from './throttle.js';

export interface RuleRuntimes {
  /** Every configured rule, enabled or not. */
  rules: ReplicationRule[];
  /** The enabled ones, ready to run. */
  runtimes: RuleRuntime[];
  /** Their other registries' endpoints: close them when done. */
  remotes: RemoteEndpoint[];
}

/** Resolves the registries enabled rules use (passwords and CA files read now: a ConfigError names what is missing). */
export function buildRuleRuntimes(deps: {
  config: BerthConfig;
  metadata: MetadataStore;
  localEndpoint: (rule: string) => LocalEndpoint;
  now: () => number;
}): RuleRuntimes {
  const { config, metadata, now } = deps;
  const section = config.replication;
  const rules = section.rules.map(compileRule);
  const enabled = rules.filter((rule) => rule.config.enabled);
  const remotes = new Map<string, RemoteEndpoint>();
  for (const registry of resolveRegistries(section.registries, {}, (r) => enabled.some((rule) => rule.registry === r.name))) {
    remotes.set(registry.name, new RemoteEndpoint(registry));
  }
  const runtimes: RuleRuntime[] = enabled.map((rule) => {
    const remote = remotes.get(rule.registry) as ReplicationEndpoint;
    const local = deps.localEndpoint(rule.name);
    const [source, target] = rule.direction === 'push' ? [local, remote] : [remote, local];
    const limit = rule.config.bandwidthBytesPerSecond > 0 ? new BandwidthLimit(rule.config.bandwidthBytesPerSecond) : undefined;
    const sync = new RuleSync({
      rule,
      source,
      target,
      records: metadata.replication,
      copy: copyOptionsOf(rule, limit ? (stream) => limit.wrap(stream) : undefined),
      now,
    });
    return {
      scope: rule,
      sync,
      source,
      target,
      exactRepositories: rule.exactRepositories(),
      sourceName: (repo) => rule.sourceName(repo),
      concurrency: rule.config.concurrency,
      direction: rule.direction,
      registry: rule.registry,
      reconcileMs: rule.config.reconcileSeconds * 1000,
    };
  });
  return { rules, runtimes, remotes: [...remotes.values()] };
}
