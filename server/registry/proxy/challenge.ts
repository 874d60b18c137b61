/*
 * WWW-Authenticate as registries send it (RFC 9110 auth-params): `Bearer realm="…",service="…",
 * scope="…"` from a Docker token service, or `Basic realm="…"`. Only the first challenge Berth can
 * answer is kept.
 */

export type Challenge =
  { scheme: 'bearer'; realm: string; service: string | undefined; scope: string | undefined } | { scheme: 'basic'; realm: string | undefined };

const PARAM = /\s*([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^\s,"]*)\s*,?/y;

function parseParams(text: string): Map<string, string> {
  const params = new Map<string, string>();
  PARAM.lastIndex = 0;
  let match: RegExpExecArray | null;
  while (PARAM.lastIndex < text.length && (match = PARAM.exec(text)) !== null) {
    const value = match[3] !== undefined ? match[3].replace(/\\(.)/g, '$1') : (match[2] ?? '');
    params.set((match[1] as string).toLowerCase(), value);
    if (match[0] === '') break;
  }
  return params;
}

/** The challenge in a 401's WWW-Authenticate header(s), or undefined when there is none Berth can answer. */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  for (const value of values) {
    const trimmed = value.trim();
    const space = trimmed.indexOf(' ');
    const scheme = (space < 0 ? trimmed : trimmed.slice(0, space)).toLowerCase();
    const params = parseParams(space < 0 ? '' : trimmed.slice(space + 1));
    if (scheme === 'bearer') {
      const realm = params.get('realm');
      if (realm === undefined || realm === '') continue;
      return { scheme: 'bearer', realm, service: params.get('service'), scope: params.get('scope') };
    }
    if (scheme === 'basic') return { scheme: 'basic', realm: params.get('realm') };
  }
  return undefined;
}
