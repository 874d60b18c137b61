import type { AccessNeed } from './types.js';

/** Every action a repository knows; `*` stands for all of them. */
export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete'] as const;

const ACTION = /^([a-z]+|\*)$/;
const TYPE = /^[a-z0-9]+(\([a-z0-9]+\))?$/;

/**
 * Parses one scope `type:name:actions`. The name may itself hold a `:` (a `host:port/`
 * prefix), so the type ends at the first colon and the actions start after the last one.
 * Returns undefined for anything malformed or of a type Berth does not know.
 */
export function parseScope(scope: string): AccessNeed | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  let type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((a) => a !== '');
  if (!TYPE.test(type) || name === '' || actions.length === 0 || !actions.every((a) => ACTION.test(a))) return undefined;
  // The resource class `repository(plugin)` is deprecated and means `repository`.
  if (type.startsWith('repository(')) type = 'repository';
  if (type !== 'repository' && type !== 'registry') return undefined;
  return { type, name, actions: [...new Set(actions)] };
}

/** Parses a list of scopes (the GET form repeats `scope`, the OAuth2 POST form separates by spaces). */
export function parseScopes(values: string[]): AccessNeed[] {
  const out: AccessNeed[] = [];
  for (const v of values) {
    for (const part of v.split(' ')) {
      if (part === '') continue;
      const need = parseScope(part);
      if (need) out.push(need);
    }
  }
  return mergeNeeds(out);
}

/** Joins needs on the same resource so each resource appears once. */
export function mergeNeeds(needs: AccessNeed[]): AccessNeed[] {
  const byKey = new Map<string, AccessNeed>();
  for (const n of needs) {
    const key = `${n.type}\u0000${n.name}`;
    const seen = byKey.get(key);
    if (seen) seen.actions = [...new Set([...seen.actions, ...n.actions])];
    else byKey.set(key, { type: n.type, name: n.name, actions: [...new Set(n.actions)] });
  }
  return [...byKey.values()];
}

export function formatScope(need: AccessNeed): string {
  return `${need.type}:${need.name}:${need.actions.join(',')}`;
}

/** True when `granted` (a token's access list) covers every action of every need. */
export function covers(granted: AccessNeed[], needs: AccessNeed[]): boolean {
  return needs.every((need) => need.actions.every((action) => hasAction(granted, need.type, need.name, action)));
}

/** The needs (per action) that `granted` does not cover. */
export function missing(granted: AccessNeed[], needs: AccessNeed[]): AccessNeed[] {
  const out: AccessNeed[] = [];
  for (const need of needs) {
    const lacking = need.actions.filter((a) => !hasAction(granted, need.type, need.name, a));
    if (lacking.length > 0) out.push({ type: need.type, name: need.name, actions: lacking });
  }
  return out;
}

function hasAction(granted: AccessNeed[], type: string, name: string, action: string): boolean {
  return granted.some((g) => g.type === type && g.name === name && (g.actions.includes(action) || g.actions.includes('*')));
}
