import { readFileSync } from 'node:fs';

let cached: string | undefined;

/**
 * Berth's version, from its package.json. Looked up relative to this module so it is the same from
 * the sources and from dist/ (which sits one directory deeper).
 */
export function berthVersion(): string {
  if (cached !== undefined) return cached;
  cached = 'unknown';
  for (const relative of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'berth' && typeof pkg.version === 'string') {
        cached = pkg.version;
        break;
      }
    } catch {
      // Not there: try the next place.
    }
  }
  return cached;
}
