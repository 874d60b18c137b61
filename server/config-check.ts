import { ConfigError, loadConfig } from './config.js';
import { closeEndpoints, resolveEndpoints } from './registry/events/endpoints.js';
import { resolveUpstreams } from './registry/proxy/upstreams.js';
import { resolveRegistries } from './registry/replication/registries.js';

/**
 * For `berth config check FILE`: every problem at once, never a throw. Beyond the schema, it reads what
 * `serve` would read at start-up (event endpoints' secret and CA files, secret and header variables;
 * proxy upstreams' password and CA files and password variables; the replication registries
 * enabled rules use, the same), so a check that passes means the
 * server starts. The environment is left out unless given, so the file is judged on its own.
 */
export function configCheck(file: string, options: { env?: NodeJS.ProcessEnv } = {}): { ok: boolean; problems: string[] } {
  const env = options.env ?? {};
  try {
    const config = loadConfig({ file, env });
    const problems: string[] = [];
    const collect = (read: () => void) => {
      try {
        read();
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems.push(...err.problems);
      }
    };
    if (config.events.enabled) collect(() => closeEndpoints(resolveEndpoints(config.events, { env })));
    collect(() => resolveUpstreams(config.proxy, { env }));
    // As setupReplication resolves them: only the registries an enabled rule uses.
    const { registries, rules } = config.replication;
    collect(() => resolveRegistries(registries, { env }, (r) => rules.some((rule) => rule.enabled && rule.registry === r.name)));
    return { ok: problems.length === 0, problems };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, problems: err.problems };
    throw err;
  }
}
