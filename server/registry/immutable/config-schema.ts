import { z } from 'zod';

/** Characters a repository name may hold, plus the glob wildcards. */
const REPOSITORY_GLOB = /^[a-z0-9._/*?-]+$/;
/** Characters a tag may hold, plus the glob wildcards. */
const TAG_GLOB = /^[A-Za-z0-9_.*?-]{1,128}$/;

const oneOrMore = (item: z.ZodString) => z.union([item, z.array(item).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

const repositoryGlob = z
  .string()
  .min(1)
  .max(255)
  .regex(REPOSITORY_GLOB, "a repository glob holds lowercase letters, digits, '.', '_', '-', '/' and the wildcards '*', '**', '?'");
const tagGlob = z
  .string()
  .regex(TAG_GLOB, "a tag glob holds letters, digits, '_', '.', '-' and the wildcards '*' (any run) and '?' (one character), at most 128");

export const immutableRuleSchema = z
  .object({
    repositories: oneOrMore(repositoryGlob).describe('Repository globs as in the auth rules: `team/**` covers team and everything under it.'),
    tags: oneOrMore(tagGlob).describe('Tag globs: `*` any run of characters, `?` one.'),
    description: z.string().max(200).optional().describe('Shown in refusals and in the API.'),
  })
  .strict();
export type ImmutableRuleConfig = z.infer<typeof immutableRuleSchema>;

export const immutableTagsConfigSchema = z
  .object({
    rules: z
      .array(immutableRuleSchema)
      .default([])
      .describe(
        'Immutable tags: [{ repositories, tags, description? }]. A matching tag can be set once (or again to the same digest) and never moved or deleted. See docs/immutable-tags.md.',
      ),
  })
  .strict()
  .prefault({});
