import { globToRegExp } from '../../../auth/glob.js';
import { tagPatternRegExp } from '../retention/policy.js';
import { EVENT_ACTIONS, eventTags, type RegistryEvent } from './event.js';

/*
 * Which events an endpoint receives. Each list narrows: an event passes when it matches every list
 * that is set, and one entry of each. A list that is absent or empty lets everything through.
 */

export interface EventFilterSpec {
  /** Exact action names (`manifest.pushed`), a family (`manifest.*`), or `*`. */
  actions?: readonly string[] | undefined;
  /** Repository globs as in the auth rules: `team/**`, `ci/*`. Events of no repository do not match. */
  repositories?: readonly string[] | undefined;
  /** Tag globs or `/regex/` (as in retention policies). Events naming no tag do not match. */
  tags?: readonly string[] | undefined;
  /** Exact media types, or a prefix ending in `*`. Events with no media type do not match. */
  mediaTypes?: readonly string[] | undefined;
}

export type EventFilter = (event: RegistryEvent) => boolean;

const FAMILIES = [...new Set(EVENT_ACTIONS.map((action) => action.slice(0, action.indexOf('.'))))];

/** Why an action pattern can never match, or undefined when it is fine (for config validation). */
export function actionPatternProblem(pattern: string): string | undefined {
  if (pattern === '*' || (EVENT_ACTIONS as readonly string[]).includes(pattern)) return undefined;
  if (pattern.endsWith('.*') && FAMILIES.includes(pattern.slice(0, -2))) return undefined;
  return `unknown action ${JSON.stringify(pattern)}: use one of ${EVENT_ACTIONS.join(', ')}, a family (${FAMILIES.map((f) => `${f}.*`).join(', ')}) or *`;
}

function actionMatcher(patterns: readonly string[]): (action: string) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (p === '*') return () => true;
    if (p.endsWith('.*')) prefixes.push(p.slice(0, -1));
    else exact.add(p);
  }
  return (action) => exact.has(action) || prefixes.some((prefix) => action.startsWith(prefix));
}

function mediaTypeMatcher(patterns: readonly string[]): (mediaType: string) => boolean {
  return (mediaType) => patterns.some((p) => (p.endsWith('*') ? mediaType.startsWith(p.slice(0, -1)) : mediaType === p));
}

/** Compiles a filter once per endpoint; the result is cheap to call per event. */
export function compileFilter(spec: EventFilterSpec): EventFilter {
  const checks: EventFilter[] = [];
  if (spec.actions?.length) {
    const matches = actionMatcher(spec.actions);
    checks.push((event) => matches(event.action));
  }
  if (spec.repositories?.length) {
    const globs = spec.repositories.map(globToRegExp);
    checks.push((event) => event.repository !== undefined && globs.some((re) => re.test(event.repository as string)));
  }
  if (spec.tags?.length) {
    const patterns = spec.tags.map(tagPatternRegExp);
    checks.push((event) => eventTags(event).some((tag) => patterns.some((re) => re.test(tag))));
  }
  if (spec.mediaTypes?.length) {
    const matches = mediaTypeMatcher(spec.mediaTypes);
    checks.push((event) => event.target.mediaType !== undefined && matches(event.target.mediaType));
  }
  return (event) => checks.every((check) => check(event));
}
