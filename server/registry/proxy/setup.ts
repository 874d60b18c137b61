// The pull-through cache in a server process: one Upstream per configured upstream (built before the
// app, since the URL rewrite needs them for containerd's `?ns=`), the fills and the two caches the
// manifest and blob routes consult, the upstream lists the tags and referrers routes ask, and the hook
// that keeps proxy namespaces read-only.
import type { FastifyInstance } from 'fastify';
import type { Authorizer } from '../../../auth/types.js';
import type { BlobDriver } from '../../../storage-drivers/blob/types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import type { BerthConfig } from '../../config.js';
import { REPO_PREFIX } from '../../routes/url-rewrite.js';
import type { GcUsage } from '../gc/usage.js';
import type { ManifestService } from '../manifests.js';
import type { Quotas } from '../quotas/service.js';
import type { SharedReads } from '../shared-reads.js';
import { BlobCache } from './blob-cache.js';
import { BlobFills, type FillObserver } from './fills.js';
import { ProxyLists } from './lists.js';
import { ManifestCache } from './manifest-cache.js';
import { ProxyNamespaces, type ProxyTarget } from './namespaces.js';
import { readOnlyRefusal } from './refusals.js';
import { Upstream, type UpstreamObserver } from './upstream.js';
import { resolveUpstreams } from './upstreams.js';

export interface ProxyRuntime {
  readonly namespaces: ProxyNamespaces;
  readonly manifests: ManifestCache;
  readonly blobs: BlobCache;
  readonly fills: BlobFills;
  readonly lists: ProxyLists;
}

export interface ProxyObservers {
  upstream?: UpstreamObserver | undefined;
  /** A cached manifest served because its upstream was unavailable. */
  stale?: ((upstream: string) => void) | undefined;
  fills?: FillObserver | undefined;
}

/** The configured upstreams (passwords and CA files read now: a ConfigError names what is missing). */
export function buildProxyNamespaces(config: BerthConfig, observers: ProxyObservers = {}): ProxyNamespaces {
  const resolved = resolveUpstreams(config.proxy);
  return new ProxyNamespaces(resolved.map((upstream) => new Upstream(upstream, { observer: observers.upstream })));
}

export interface ProxySetup {
  config: BerthConfig;
  namespaces: ProxyNamespaces;
  driver: BlobDriver;
  metadata: MetadataStore;
  manifests: ManifestService;
  quotas: Quotas;
  usage: GcUsage;
  /** Decides a push into a proxy namespace before it is refused as read-only. */
  authorizer: Authorizer;
  /** The app's shared reads (storage.sharedReads), when on: followers of another process's fill read its chunks through them. */
  sharedReads?: SharedReads | undefined;
  observers?: ProxyObservers | undefined;
}

/** Wires the pull-through cache into `app`; undefined (nothing wired) when no upstream is configured. */
export function setupProxy(app: FastifyInstance, setup: ProxySetup): ProxyRuntime | undefined {
  const { namespaces, metadata } = setup;
  if (namespaces.size === 0) return undefined;
  const fills = new BlobFills(setup.driver, metadata, {
    maxFillBytes: setup.config.proxy.maxFillBytes,
    sharedReads: setup.sharedReads,
    observer: setup.observers?.fills,
  });
  const runtime: ProxyRuntime = {
    namespaces,
    fills,
    manifests: new ManifestCache({ metadata, manifests: setup.manifests, onStale: setup.observers?.stale }),
    blobs: new BlobCache({ metadata, fills, quotas: setup.quotas, usage: setup.usage, log: app.log }),
    lists: new ProxyLists({ onStale: setup.observers?.stale }),
  };
  // Every change to a repository (manifest PUT/DELETE, blob DELETE, uploads, mounts) is a method other
  // than GET and HEAD under /v2/_r/<name>/: one hook refuses them all, before any body is read. Access
  // is decided first, as for any push, so an anonymous client is challenged (401) and only a caller
  // allowed to push (or delete) hears that the namespace is a read-only cache.
  app.addHook('onRequest', async (request) => {
    if (request.method === 'GET' || request.method === 'HEAD') return;
    const found = targetOfUrl(namespaces, request.url);
    if (!found) return;
    await setup.authorizer.authorize(request, [{ type: 'repository', name: found.name, actions: [request.method === 'DELETE' ? 'delete' : 'push'] }]);
    throw readOnlyRefusal(found.target);
  });
  // What killed fills left under fills/ goes with the upload sweep, by the same idle rule: untouched for
  // uploads.idleTimeoutSeconds and no process holding the fill's lease.
  const sweep = setInterval(() => {
    const cutoff = new Date(Date.now() - setup.config.uploads.idleTimeoutSeconds * 1000);
    fills.sweepFills(cutoff).catch((err: unknown) => app.log.warn({ err }, 'fill sweep failed'));
  }, setup.config.uploads.sweepIntervalSeconds * 1000);
  sweep.unref();
  app.addHook('onClose', async () => {
    clearInterval(sweep);
    for (const upstream of namespaces.all()) upstream.close();
  });
  return runtime;
}

function targetOfUrl(namespaces: ProxyNamespaces, url: string): { name: string; target: ProxyTarget } | undefined {
  if (!url.startsWith(REPO_PREFIX)) return undefined;
  const encoded = url.slice(REPO_PREFIX.length).split('/')[0] ?? '';
  let name: string;
  try {
    name = decodeURIComponent(encoded);
  } catch {
    return undefined;
  }
  const target = namespaces.resolve(name);
  return target && { name, target };
}
