import type { Upstream } from './upstream.js';

/*
 * Which local repositories are pulled through which upstream: `<namespace>/<name>` belongs to the
 * upstream configured for that namespace, and the upstream's name for it is `<name>` (with library/
 * where the upstream wants it). Containerd, mirroring several registries through one Berth, names the
 * registry it wanted in `?ns=`; forHost maps that host to its upstream.
 */

export interface ProxyTarget {
  upstream: Upstream;
  /** The repository's name at the upstream. */
  remoteRepo: string;
}

export class ProxyNamespaces {
  private readonly byNamespace = new Map<string, Upstream>();
  private readonly byHost = new Map<string, Upstream>();

  constructor(upstreams: readonly Upstream[]) {
    for (const upstream of upstreams) {
      this.byNamespace.set(upstream.namespace, upstream);
      for (const host of upstream.hosts) this.byHost.set(host.toLowerCase(), upstream);
    }
  }

  get size(): number {
    return this.byNamespace.size;
  }

  /** The upstream and remote name of a local repository, or undefined when no upstream proxies it. */
  resolve(localRepo: string): ProxyTarget | undefined {
    const slash = localRepo.indexOf('/');
    if (slash <= 0 || slash === localRepo.length - 1) return undefined;
    const upstream = this.byNamespace.get(localRepo.slice(0, slash));
    if (upstream === undefined) return undefined;
    return { upstream, remoteRepo: upstream.remoteName(localRepo.slice(slash + 1)) };
  }

  /** The upstream whose `hosts` include containerd's `?ns=` value (host names ignore case). */
  forHost(ns: string): Upstream | undefined {
    return this.byHost.get(ns.trim().toLowerCase());
  }

  /** Every upstream, for shutting them down. */
  all(): Upstream[] {
    return [...this.byNamespace.values()];
  }
}
