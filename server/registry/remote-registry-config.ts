import { z } from 'zod';
import { outboundUrl } from '../config-sources.js';

/*
 * How Berth reaches another registry: the keys a proxy upstream and a replication registry share, with
 * the same checks, so both sections read alike and one fix reaches both. Passwords are named here (a
 * file or an environment variable), never written here: they are read at start-up.
 */

/** One path segment: names a proxy namespace or a replication registry in paths, metrics and logs. */
export const REMOTE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
export const REMOTE_NAME_MESSAGE = 'must be one path segment of lowercase letters, digits and "-" (not at either end), at most 64 characters';
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

// URLs appear in logs and metrics; credentials belong in username + passwordFile/passwordEnv.
const registryUrl = outboundUrl({
  credentials: 'use username with passwordFile or passwordEnv',
  bare: 'give the registry base URL, e.g. https://registry-1.docker.io',
});

/** The shared keys, to spread into a section's z.object (each section describes `urls` in its own words). */
export const remoteRegistryFields = {
  urls: z.array(registryUrl).min(1),
  username: z.string().min(1).optional().describe('Sent to the registry (token service login or Basic); its password comes from passwordFile or passwordEnv.'),
  passwordFile: z.string().min(1).optional().describe('File holding the password (trailing line break ignored).'),
  passwordEnv: z.string().regex(ENV_NAME, 'must be an environment variable name').optional().describe('Environment variable holding the password.'),
  timeoutSeconds: z
    .number()
    .positive()
    .max(600)
    .default(30)
    .describe('Connecting and receiving the response headers; a body that sends no byte for this long is cut too.'),
  maxConcurrent: z.number().int().min(1).max(1024).default(16).describe('Requests in flight to this registry, per process; more wait in line.'),
  requestsPerSecond: z.number().min(0).default(0).describe('Requests started per second to this registry, per process (a token bucket); 0: no cap.'),
  maxWaitSeconds: z
    .number()
    .min(0)
    .max(3600)
    .default(30)
    .describe("A request waiting longer than this for the caps above fails with 503 (Berth's own cap never fails a request sooner)."),
  caFile: z.string().min(1).optional().describe('PEM CA certificate(s) to trust for https URLs, instead of the system ones.'),
};

interface RemoteRegistryKeys {
  urls: string[];
  username?: string | undefined;
  passwordFile?: string | undefined;
  passwordEnv?: string | undefined;
  caFile?: string | undefined;
}

/** The checks across the shared keys, for the section's superRefine. */
export function checkRemoteRegistry(remote: RemoteRegistryKeys, ctx: z.RefinementCtx): void {
  if (remote.passwordFile !== undefined && remote.passwordEnv !== undefined)
    ctx.addIssue({ code: 'custom', path: ['passwordEnv'], message: 'give passwordFile or passwordEnv, not both' });
  for (const key of ['passwordFile', 'passwordEnv'] as const) {
    if (remote[key] !== undefined && remote.username === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'only used with username' });
  }
  if (remote.caFile !== undefined && !remote.urls.some((url) => url.startsWith('https:')))
    ctx.addIssue({ code: 'custom', path: ['caFile'], message: 'only used for https URLs' });
  const seen = new Set<string>();
  remote.urls.forEach((url, i) => {
    const key = url.replace(/\/+$/, '');
    if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['urls', i], message: `${url} is given twice` });
    seen.add(key);
  });
}
