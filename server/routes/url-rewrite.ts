/*
 * Repository names contain '/', which a router cannot match in the middle of a path. Before routing,
 * `/v2/<name>/<kind>/<rest>` is rewritten to `/v2/_r/<name with / encoded>/<kind>/<rest>` so that each
 * endpoint is an ordinary route with a template (used for metrics labels) and its own body parser.
 */
const REPO_PATH = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/(.*)$/;
export const REPO_PREFIX = '/v2/_r/';
/** The management API's per-repository routes, rewritten the same way. */
const API_REPO_PATH = /^\/api\/v1\/repositories\/(.+)\/(manifests\/[^/]*|tags(?:\/[^/]*)?|delete)$/;
export const API_REPO_PREFIX = '/api/v1/repositories/_r/';
/** A repository itself (`GET /api/v1/repositories/<name>`): whatever the suffix routes left. */
const API_REPO_ITSELF = /^\/api\/v1\/repositories\/(.+)$/;

/**
 * `namespaceFor` maps containerd's `?ns=<registry host>` to the local proxy namespace of that
 * registry: `/v2/library/nginx/manifests/latest?ns=docker.io` names `<namespace>/library/nginx`, so
 * access checks and everything after see the local name.
 */
export function rewriteRegistryUrl(url: string, namespaceFor?: (ns: string) => string | undefined): string {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  const api = API_REPO_PATH.exec(path);
  if (api) return `${API_REPO_PREFIX}${encodeURIComponent(api[1] as string)}/${api[2] as string}${query}`;
  const itself = API_REPO_ITSELF.exec(path);
  if (itself) return `${API_REPO_PREFIX}${encodeURIComponent(itself[1] as string)}${query}`;
  const m = REPO_PATH.exec(path);
  if (!m) return url;
  const [, name, kind, rest] = m as unknown as [string, string, string, string];
  const ns = namespaceFor && query.includes('ns=') ? new URLSearchParams(query.slice(1)).get('ns') : null;
  const namespace = ns !== null ? namespaceFor?.(ns) : undefined;
  const local = namespace !== undefined ? `${namespace}/${name}` : name;
  // A client that sends the rewritten form itself gets it rewritten again, into an invalid name.
  return `${REPO_PREFIX}${encodeURIComponent(local)}/${kind}/${rest}${query}`;
}
