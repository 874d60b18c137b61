import { z } from 'zod';

const action = z.string().regex(/^([a-z]+|\*)$/, 'an action is a lowercase word or *');
const patterns = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

/**
 * One access rule. It applies to a resource (repository glob, or a registry resource such as
 * `catalog`) and to subjects; `allow` adds actions, `deny` removes them and always wins.
 */
export const ruleSchema = z
  .object({
    /** Repository globs: `*` stays within one path segment, `**` crosses `/`, `?` is one character. */
    repository: patterns.optional(),
    /** Registry-wide resource, e.g. `catalog`. */
    registry: patterns.optional(),
    users: z.array(z.string().min(1)).default([]),
    groups: z.array(z.string().min(1)).default([]),
    /** Robot names (without the `robot+` prefix); globs allowed. */
    robots: z.array(z.string().min(1)).default([]),
    anonymous: z.boolean().default(false),
    /** Any user or robot that logged in. */
    authenticated: z.boolean().default(false),
    /** Anyone, logged in or not. */
    everyone: z.boolean().default(false),
    allow: z.array(action).default([]),
    deny: z.array(action).default([]),
  })
  .strict()
  .refine((r) => (r.repository === undefined) !== (r.registry === undefined), { message: 'a rule needs exactly one of repository or registry' });
export type Rule = z.infer<typeof ruleSchema>;

export const groupsSchema = z.record(z.string().min(1), z.array(z.string().min(1)));

/** The rules file (YAML). */
export const rulesFileSchema = z
  .object({
    groups: groupsSchema.default({}),
    rules: z.array(ruleSchema).default([]),
  })
  .strict();
export type RulesFile = z.infer<typeof rulesFileSchema>;
