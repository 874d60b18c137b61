/*
 * Repository names contain '/', which a router cannot match in the middle of a path. Before routing,
 * `/v2/<name>/<kind>/<rest>` is rewritten to `/v2/_r/<name with / encoded>/<kind>/<rest>` so that each
 * endpoint is an ordinary route with a template (used for metrics labels) and its own body parser.
 */
const REPO_PATH = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/(.*)$/;
export const REPO_PREFIX = '/v2/_r/';

export function rewriteRegistryUrl(url: string): string {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  const m = REPO_PATH.exec(path);
  if (!m) return url;
  const [, name, kind, rest] = m as unknown as [string, string, string, string];
  // A client that sends the rewritten form itself gets it rewritten again, into an invalid name.
  return `${REPO_PREFIX}${encodeURIComponent(name)}/${kind}/${rest}${query}`;
}
