import { z } from 'zod';
import { outboundUrl } from '../../config-sources.js';

/*
 * The `proxy` section (docs/pull-through-cache.md): upstream registries that local namespaces pull
 * through. Passwords are named here (a file or an environment variable), never written here:
 * resolveUpstreams reads them at start-up.
 */

const NAMESPACE = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A host name, optionally with a port, as containerd puts it in `?ns=`. */
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/;
const GiB = 1024 * 1024 * 1024;

// URLs appear in logs and metrics; credentials belong in username + passwordFile/passwordEnv.
const upstreamUrl = outboundUrl({
  credentials: 'use username with passwordFile or passwordEnv',
  bare: 'give the registry base URL, e.g. https://registry-1.docker.io',
});

export const upstreamConfigSchema = z
  .object({
    namespace: z
      .string()
      .regex(NAMESPACE, 'must be one path segment of lowercase letters, digits and "-" (not at either end), at most 64 characters')
      .describe('Local repositories <namespace>/<name> are pulled through this upstream.'),
    urls: z
      .array(upstreamUrl)
      .min(1)
      .describe('Base URLs of the upstream registry, tried in order: the next one when one is unreachable, times out or answers 5xx/429.'),
    hosts: z
      .array(z.string().regex(HOST, 'must be a host name (with an optional :port)'))
      .default([])
      .describe("Registry host names containerd's `?ns=` may give for this upstream (e.g. docker.io)."),
    libraryPrefix: z.boolean().default(false).describe('Single-segment names get library/ (dockerhub/nginx pulls library/nginx), as Docker Hub needs.'),
    username: z
      .string()
      .min(1)
      .optional()
      .describe('Sent to the upstream (token service login or Basic); its password comes from passwordFile or passwordEnv.'),
    passwordFile: z.string().min(1).optional().describe('File holding the password (trailing line break ignored).'),
    passwordEnv: z.string().regex(ENV_NAME, 'must be an environment variable name').optional().describe('Environment variable holding the password.'),
    tagTtlSeconds: z.number().int().min(0).default(300).describe('A cached tag is served this long before the upstream is asked again.'),
    timeoutSeconds: z
      .number()
      .positive()
      .max(600)
      .default(30)
      .describe('Connecting and receiving the response headers; a body that sends no byte for this long is cut too.'),
    maxConcurrent: z.number().int().min(1).max(1024).default(16).describe('Requests in flight to this upstream, per process; more wait in line.'),
    requestsPerSecond: z.number().min(0).default(0).describe('Requests started per second to this upstream, per process (a token bucket); 0: no cap.'),
    maxWaitSeconds: z
      .number()
      .min(0)
      .max(3600)
      .default(30)
      .describe("A request waiting longer than this for the caps above fails with 503 (Berth's own cap never fails a request sooner)."),
    caFile: z.string().min(1).optional().describe('PEM CA certificate(s) to trust for https URLs, instead of the system ones.'),
  })
  .strict()
  .superRefine((upstream, ctx) => {
    if (upstream.passwordFile !== undefined && upstream.passwordEnv !== undefined)
      ctx.addIssue({ code: 'custom', path: ['passwordEnv'], message: 'give passwordFile or passwordEnv, not both' });
    for (const key of ['passwordFile', 'passwordEnv'] as const) {
      if (upstream[key] !== undefined && upstream.username === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'only used with username' });
    }
    if (upstream.caFile !== undefined && !upstream.urls.some((url) => url.startsWith('https:')))
      ctx.addIssue({ code: 'custom', path: ['caFile'], message: 'only used for https URLs' });
    const seen = new Set<string>();
    upstream.urls.forEach((url, i) => {
      const key = url.replace(/\/+$/, '');
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['urls', i], message: `${url} is given twice` });
      seen.add(key);
    });
  });

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
