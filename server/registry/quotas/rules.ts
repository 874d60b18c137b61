import { globMatch } from '../../../auth/glob.js';
import type { QuotaRule } from './config.js';

/** A repository's namespace: its first path segment (`team/app/api` → `team`; `alpine` is its own). */
export function namespaceOf(repo: string): string {
  const slash = repo.indexOf('/');
  return slash === -1 ? repo : repo.slice(0, slash);
}

/** The limit that applies to a namespace and the rule it comes from. */
export interface AppliedLimit {
  rule: string;
  limitBytes: number;
}

/** First matching rule wins; no rule, no limit. */
export function limitFor(rules: readonly QuotaRule[], ns: string): AppliedLimit | undefined {
  for (const rule of rules) {
    if (globMatch(rule.namespace, ns)) return { rule: rule.namespace, limitBytes: rule.limitBytes };
  }
  return undefined;
}

/** 10737418240 → "10 GiB", 10522669875 → "9.8 GiB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes} B`;
  const text = value.toFixed(1);
  return `${text.endsWith('.0') ? text.slice(0, -2) : text} ${units[unit]}`;
}
