import { z } from 'zod';
import { checkRemoteRegistry, REMOTE_NAME, REMOTE_NAME_MESSAGE, remoteRegistryFields } from '../remote-registry-config.js';

/*
 * The `proxy` section (docs/pull-through-cache.md): upstream registries that local namespaces pull
 * through. The keys for reaching an upstream are shared with replication (remote-registry-config.ts);
 * resolveUpstreams reads the named passwords at start-up.
 */

/** A host name, optionally with a port, as containerd puts it in `?ns=`. */
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/;
const GiB = 1024 * 1024 * 1024;

export const upstreamConfigSchema = z
  .object({
    namespace: z.string().regex(REMOTE_NAME, REMOTE_NAME_MESSAGE).describe('Local repositories <namespace>/<name> are pulled through this upstream.'),
    ...remoteRegistryFields,
    urls: remoteRegistryFields.urls.describe(
      'Base URLs of the upstream registry, tried in order: the next one when one is unreachable, times out or answers 5xx/429.',
    ),
    hosts: z
      .array(z.string().regex(HOST, 'must be a host name (with an optional :port)'))
      .default([])
      .describe("Registry host names containerd's `?ns=` may give for this upstream (e.g. docker.io)."),
    libraryPrefix: z.boolean().default(false).describe('Single-segment names get library/ (dockerhub/nginx pulls library/nginx), as Docker Hub needs.'),
    tagTtlSeconds: z.number().int().min(0).default(300).describe('A cached tag is served this long before the upstream is asked again.'),
  })
  .strict()
  .superRefine(checkRemoteRegistry);

export type UpstreamConfig = z.output<typeof upstreamConfigSchema>;

export const proxyConfigSchema = z
  .object({
    upstreams: z
      .array(upstreamConfigSchema)
      .superRefine((upstreams, ctx) => {
        const namespaces = new Set<string>();
        const hosts = new Map<string, string>();
        upstreams.forEach((upstream, i) => {
          if (namespaces.has(upstream.namespace))
            ctx.addIssue({ code: 'custom', path: [i, 'namespace'], message: `namespace ${JSON.stringify(upstream.namespace)} is used twice` });
          namespaces.add(upstream.namespace);
          upstream.hosts.forEach((host, j) => {
            const lower = host.toLowerCase();
            const owner = hosts.get(lower);
            // `?ns=` must pick one upstream: a host claimed twice would make the choice silent.
            if (owner !== undefined && owner !== upstream.namespace)
              ctx.addIssue({ code: 'custom', path: [i, 'hosts', j], message: `host ${host} is already given for namespace ${JSON.stringify(owner)}` });
            hosts.set(lower, upstream.namespace);
          });
        });
      })
      .default([])
      .describe('Upstream registries: [{ namespace, urls, hosts, libraryPrefix, username, passwordFile | passwordEnv, … }]. See docs/pull-through-cache.md.'),
    maxFillBytes: z
      .number()
      .int()
      .min(0)
      .default(10 * GiB)
      .describe('Bytes of blobs being fetched from upstreams at once (partial uploads on disk), per process; fills past it wait.'),
  })
  .strict()
  .prefault({});

export type ProxyConfig = z.output<typeof proxyConfigSchema>;
