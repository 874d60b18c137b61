// What a retention policy says (docs/retention.md), validated with zod so a mistake in the config file
// or in a previewed policy is named by its key. Durations stay text ("30d") so a policy reads back as
// it was written; the evaluation turns them into milliseconds once.
import { z } from 'zod';
import { globToRegExp } from '../../../auth/glob.js';

const DURATION = /^(\d+)(s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "30d" → milliseconds; undefined for text that is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

const duration = z
  .string()
  .refine((text) => parseDuration(text) !== undefined, { message: 'must be a whole number and a unit: s, m, h, d or w (e.g. "30d", "12h")' });

/**
 * A tag pattern: a glob (`*` any run of characters, `?` one; a tag has no `/`), or a regular
 * expression written between slashes (`/^v\d+\.\d+$/`), matched against the whole tag only if it
 * anchors itself.
 */
export const tagPattern = z
  .string()
  .min(1)
  .superRefine((text, ctx) => {
    if (!isRegexPattern(text)) return;
    try {
      new RegExp(text.slice(1, -1));
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message}` });
    }
  });

function isRegexPattern(text: string): boolean {
  return text.length >= 2 && text.startsWith('/') && text.endsWith('/');
}

const groupBy = z.string().superRefine((text, ctx) => {
  let re: RegExp;
  try {
    re = new RegExp(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message}` });
    return;
  }
  // A regex with no capture group would put every tag into one group: the same as leaving groupBy out.
  if (new RegExp(`${re.source}|`).exec('')!.length < 2) {
    ctx.addIssue({ code: 'custom', message: 'needs a capture group naming the group, e.g. "^(?<branch>.+)-[0-9a-f]{7,}$"' });
  }
});

export const KEEP_RULES = ['keepLastPushed', 'keepLastPulled', 'keepPushedWithin', 'keepPulledWithin', 'keepTags'] as const;
export type KeepRule = (typeof KEEP_RULES)[number];

export const retentionPolicySchema = z
  .object({
    name: z.string().min(1).max(100).describe('Named in every preview line, audit line and metric.'),
    repositories: z.array(z.string().min(1)).min(1).describe('Repository globs (`team/**`, `ci/*`); the first policy matching a repository is its policy.'),
    tags: z.array(tagPattern).min(1).optional().describe('Only tags matching one of these are judged; the others are kept.'),
    groupBy: groupBy.optional().describe('A regex whose capture groups name a tag’s group: the "last N" rules count per group.'),
    keepLastPushed: z.number().int().min(1).optional(),
    keepLastPulled: z.number().int().min(1).optional(),
    keepPushedWithin: duration.optional(),
    keepPulledWithin: duration.optional(),
    keepTags: z.array(tagPattern).min(1).optional(),
    deleteLatest: z.boolean().default(false),
    deleteImmutable: z.boolean().default(false),
    maxDeleteFraction: z.number().min(0).max(1).default(0.5),
    untagged: z
      .object({ deleteAfter: duration })
      .strict()
      .optional()
      .describe('Manifests that lost their last tag are deleted this long after (unless an index or a tag keeps them).'),
  })
  .strict()
  .superRefine((policy, ctx) => {
    if (!KEEP_RULES.some((rule) => policy[rule] !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: `policy ${JSON.stringify(policy.name)} has no keep rule, so it would delete every tag it judges: set at least one of ${KEEP_RULES.join(', ')}`,
      });
    }
  });

export type RetentionPolicy = z.output<typeof retentionPolicySchema>;
export type RetentionPolicyInput = z.input<typeof retentionPolicySchema>;

export const retentionPoliciesSchema = z.array(retentionPolicySchema).superRefine((policies, ctx) => {
  const seen = new Set<string>();
  policies.forEach((p, i) => {
    if (seen.has(p.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `policy name ${JSON.stringify(p.name)} is used twice` });
    seen.add(p.name);
  });
});

/** The first policy whose repository globs match: the order in the list is the order of precedence. */
export function policyFor(policies: readonly RetentionPolicy[], repository: string): RetentionPolicy | undefined {
  return policies.find((p) => p.repositories.some((glob) => globToRegExp(glob).test(repository)));
}

const patternCache = new Map<string, RegExp>();

/** A tag pattern (see tagPattern) as a RegExp. */
export function tagPatternRegExp(pattern: string): RegExp {
  let re = patternCache.get(pattern);
  if (!re) {
    re = isRegexPattern(pattern) ? new RegExp(pattern.slice(1, -1)) : globToRegExp(pattern);
    if (patternCache.size > 10_000) patternCache.clear();
    patternCache.set(pattern, re);
  }
  return re;
}

/** The first of `patterns` that matches `tag`. */
export function firstMatch(patterns: readonly string[], tag: string): string | undefined {
  return patterns.find((p) => tagPatternRegExp(p).test(tag));
}
