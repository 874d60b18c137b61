import { definitions, h, row, table, when, type Child } from './dom.js';

// Status answers of the operator routes differ by feature and grow as features do; these render any
// of them readably (words from camelCase keys, times as times) so a new field shows without UI work.

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

export function words(key: string): string {
  const spaced = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

export function value(v: unknown): Child {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string') return ISO.test(v) ? when(v) : v;
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v) && v.length === 0) return 'none';
  if (Array.isArray(v)) return v.every((x) => typeof x !== 'object' || x === null) ? v.join(', ') : `${v.length} entries`;
  return h('code', {}, JSON.stringify(v));
}

/** An object's fields as a definition list; nested objects become their own lists. */
export function facts(obj: Record<string, unknown>, skip: readonly string[] = []): HTMLElement {
  const pairs: Array<[string, Child]> = [];
  const nested: HTMLElement[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (skip.includes(k)) continue;
    if (v !== null && typeof v === 'object' && !Array.isArray(v))
      nested.push(h('div', { class: 'nested' }, h('h3', {}, words(k)), facts(v as Record<string, unknown>)));
    else if (Array.isArray(v) && v.some((x) => x !== null && typeof x === 'object'))
      nested.push(h('div', { class: 'nested' }, h('h3', {}, words(k)), records(words(k), v as Array<Record<string, unknown>>)));
    else pairs.push([words(k), value(v)]);
  }
  return h('div', {}, pairs.length ? definitions(pairs) : null, ...nested);
}

/** A list of objects as a table with a column per field any of them has. */
export function records(caption: string, list: Array<Record<string, unknown>>, columns?: string[]): HTMLElement {
  if (list.length === 0) return h('p', { class: 'muted' }, 'None.');
  const keys = columns ?? [...new Set(list.flatMap((x) => Object.keys(x)))];
  return table(
    caption,
    keys.map(words),
    list.map((x) => row(...keys.map((k) => value(x[k])))),
    { captionHidden: true },
  );
}
