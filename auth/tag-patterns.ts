import { compileRe2, type Re2Pattern } from './re2.js';
import type { Principal } from './types.js';

/*
 * Immutable-tag patterns carried by a token, in GitLab's shape: each entry of the `access` claim may
 * hold `meta.tag_immutable_patterns`, a list of RE2 patterns for the tags of that entry's repository
 * (GitLab caps them at 100 characters and matches them unanchored). They only ever add immutability.
 */

/** GitLab's own limit on one pattern. */
export const MAX_PATTERN_LENGTH = 100;
/** More than this many patterns on one entry are not compiled (GitLab allows 5 rules per project). */
export const MAX_PATTERNS = 32;

/** A pattern Berth could not use safely, and why. */
export interface UnusablePattern {
  pattern: string;
  reason: string;
}

/** What a token says about one repository's tags. */
export interface TokenImmutability {
  patterns: Re2Pattern[];
  /**
   * Patterns that did not compile (or exceed the limits). Each one makes every tag of the repository
   * immutable for this token: the issuer meant some tags to be kept, and guessing which is unsafe.
   */
  unusable: UnusablePattern[];
}

/** The claim's patterns for one access entry, or undefined when it carries none. */
export function readTagImmutability(meta: unknown): TokenImmutability | undefined {
  if (!meta || typeof meta !== 'object') return undefined;
  const raw = (meta as Record<string, unknown>).tag_immutable_patterns;
  if (raw === undefined || raw === null) return undefined;
  const out: TokenImmutability = { patterns: [], unusable: [] };
  if (!Array.isArray(raw)) {
    out.unusable.push({ pattern: String(raw).slice(0, MAX_PATTERN_LENGTH), reason: 'tag_immutable_patterns is not a list' });
    return out;
  }
  for (const [index, item] of (raw as unknown[]).entries()) {
    if (typeof item !== 'string') {
      out.unusable.push({ pattern: String(item).slice(0, MAX_PATTERN_LENGTH), reason: 'not a string' });
    } else if (index >= MAX_PATTERNS) {
      out.unusable.push({ pattern: item.slice(0, MAX_PATTERN_LENGTH), reason: `more than ${MAX_PATTERNS} patterns` });
    } else if (item.length > MAX_PATTERN_LENGTH) {
      out.unusable.push({ pattern: `${item.slice(0, MAX_PATTERN_LENGTH)}…`, reason: `longer than ${MAX_PATTERN_LENGTH} characters` });
    } else {
      try {
        out.patterns.push(compileRe2(item));
      } catch (err) {
        out.unusable.push({ pattern: item, reason: (err as Error).message });
      }
    }
  }
  return out.patterns.length + out.unusable.length === 0 ? undefined : out;
}

/** Joins what several access entries of one token say about the same repository. */
export function mergeTagImmutability(a: TokenImmutability | undefined, b: TokenImmutability): TokenImmutability {
  return a === undefined ? b : { patterns: [...a.patterns, ...b.patterns], unusable: [...a.unusable, ...b.unusable] };
}

/** The token's patterns for `repository`, if the request's principal carries any. */
export function tokenImmutabilityFor(principal: Principal, repository: string): TokenImmutability | undefined {
  return principal.tagImmutability?.get(repository);
}
