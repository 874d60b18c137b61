import { z } from 'zod';
import { isValidName } from '../references.js';
import { checkRemoteRegistry, REMOTE_NAME, REMOTE_NAME_MESSAGE, remoteRegistryFields } from '../remote-registry-config.js';
import { parsePlatform } from './platforms.js';
import { parseRange } from './semver.js';
import { backupTemplateProblem } from './backup-tag.js';
import { isPlainName, literalPrefix, normalisePrefix } from './rules.js';

/*
 * The `replication` section (docs/replication.md): the registries Berth replicates with, and the rules
 * saying what goes where. Everything a rule compiles to (globs, the regex, the semver range, platforms,
 * the backup tag template) is checked here, so a mistake stops start-up with its key named instead of
 * failing the first run.
 */

const MiB = 1024 * 1024;

export const replicationRegistrySchema = z
  .object({
    name: z.string().regex(REMOTE_NAME, REMOTE_NAME_MESSAGE).describe('Named by rules (`registry:`), and in status, logs and metrics.'),
    ...remoteRegistryFields,
    urls: remoteRegistryFields.urls.describe('Base URLs of the registry, tried in order: the next one when one is unreachable, times out or answers 5xx/429.'),
  })
  .strict()
  .superRefine(checkRemoteRegistry);

export type ReplicationRegistryConfig = z.output<typeof replicationRegistrySchema>;

// A glob whose fixed characters no name can hold matches nothing: a typo (an upper-case letter) would
// otherwise make a rule silently copy nothing.
const repositoryGlob = z
  .string()
  .min(1)
  .refine((text) => /^[a-z0-9._/-]*$/.test(text.replace(/[*?]/g, '')), {
    message: 'a repository glob holds lowercase letters, digits, ".", "_", "-" and "/" besides * and ?',
  });
const tagGlob = z
  .string()
  .min(1)
  .refine((text) => /^[A-Za-z0-9._-]*$/.test(text.replace(/[*?]/g, '')), {
    message: 'a tag glob holds letters, digits, ".", "_" and "-" besides * and ? (a tag has no "/")',
  });

const prefix = z
  .string()
  .min(1)
  .refine((text) => isValidName(normalisePrefix(text)), {
    message: 'must be a repository path (lowercase components joined by "/"), e.g. mirror or team/apps',
  })
  .transform(normalisePrefix);

const regexText = z
  .string()
  .min(1)
  .superRefine((text, ctx) => {
    try {
      new RegExp(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message}` });
    }
  });

const semverText = z.string().superRefine((text, ctx) => {
  try {
    parseRange(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const platformText = z.string().superRefine((text, ctx) => {
  try {
    parsePlatform(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const backupTemplate = z.string().superRefine((text, ctx) => {
  const problem = backupTemplateProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const replicationRuleSchema = z
  .object({
    name: z
      .string()
      .regex(REMOTE_NAME, REMOTE_NAME_MESSAGE)
      .describe('Names the rule in status, logs, metrics and its stored state; renaming it starts afresh.'),
    direction: z.enum(['push', 'pull']).describe('push: this Berth → the registry. pull: the registry → this Berth.'),
    registry: z.string().min(1).describe('The other side: a name from replication.registries.'),
    repositories: z
      .array(repositoryGlob)
      .min(1)
      .describe('Source repository globs (`**` crosses "/", `*` and `?` stay within one component); plain names are copied even without a catalog.'),
    excludeRepositories: z.array(repositoryGlob).default([]).describe('Source repositories matching one of these globs are left out.'),
    tags: z.array(tagGlob).min(1).default(['*']).describe('Only tags matching one of these globs (`*` any run of characters, `?` one).'),
    tagRegex: regexText.optional().describe('Only tags this regular expression finds (JavaScript syntax; anchor it with ^…$ to match the whole tag).'),
    tagSemver: semverText
      .optional()
      .describe(
        'Only tags that are versions (1.2.3, v1.2.3, 1.2.3-rc.1) in this npm-style range (>=1.2.0 <2, ^1.2, ~1.4, 1.x, a || b); prereleases only where the range names one.',
      ),
    destination: z
      .object({
        stripPrefix: prefix.optional().describe('Removed from the front of the source name (whole components); names without it are not covered.'),
        addPrefix: prefix.optional().describe('Put in front of what is left: the target repository is addPrefix/name.'),
      })
      .strict()
      .prefault({})
      .describe('How a source repository name becomes the target one.'),
    platforms: z.array(platformText).default([]).describe('Only these platforms of an index (linux/amd64, linux/arm64/v8; arm64 means arm64/v8); empty: all.'),
    referrers: z.boolean().default(true).describe('Copy the referrers (signatures, SBOMs, attestations) of what is copied.'),
    conflict: z
      .enum(['skip', 'overwrite', 'backup'])
      .default('skip')
      .describe('When the target tag points at another digest: skip it, overwrite it, or keep the old digest under backupTag and then overwrite.'),
    backupTag: backupTemplate
      .default('{tag}-replaced-{digest12}')
      .describe('With conflict: backup, the tag the old digest keeps: {tag}, {digest12} (first 12 hex digits) and {digest} (all of them).'),
    deletes: z.boolean().default(false).describe('Delete on the target what was deleted on the source (only repositories and tags the rule covers).'),
    onPush: z
      .boolean()
      .optional()
      .describe('Push rules only (default true): copy within seconds of a change, from the event stream. Pull rules have no events from the source.'),
    reconcileSeconds: z
      .number()
      .int()
      .min(0)
      .default(900)
      .describe('Compare source and target and copy what differs this often (repairs missed events); 0: never scheduled.'),
    bandwidthBytesPerSecond: z.number().int().min(0).default(0).describe('Bytes per second the rule may send, across its copies in this process; 0: no cap.'),
    chunkBytes: z
      .number()
      .int()
      .min(5 * MiB)
      .max(1024 * MiB)
      .default(8 * MiB)
      .describe('Blobs are uploaded in chunks of this many bytes; a failed chunk is retried from where the target got to.'),
    concurrency: z.number().int().min(1).max(64).default(4).describe('Repositories (and artifacts within one) copied in parallel.'),
    enabled: z.boolean().default(true).describe('A disabled rule keeps its state but never runs.'),
  })
  .strict()
  .superRefine((rule, ctx) => {
    if (rule.direction === 'pull' && rule.onPush === true)
      ctx.addIssue({
        code: 'custom',
        path: ['onPush'],
        message: 'only for push rules: a pull rule gets no events from the source, it runs every reconcileSeconds',
      });
    const strip = rule.destination.stripPrefix;
    rule.repositories.forEach((glob, i) => {
      if (isPlainName(glob) && !isValidName(glob)) {
        ctx.addIssue({ code: 'custom', path: ['repositories', i], message: `${JSON.stringify(glob)} is not a valid repository name, so it matches nothing` });
        return;
      }
      // A pattern whose fixed start cannot begin with stripPrefix covers nothing: say so rather than copy nothing.
      if (strip !== undefined) {
        const fixed = literalPrefix(glob);
        const reachable = fixed.length >= strip.length + 1 ? fixed.startsWith(`${strip}/`) : `${strip}/`.startsWith(fixed);
        if (!reachable)
          ctx.addIssue({
            code: 'custom',
            path: ['repositories', i],
            message: `${JSON.stringify(glob)} never starts with stripPrefix ${JSON.stringify(strip)}/`,
          });
      }
    });
  });

export type ReplicationRuleConfig = z.output<typeof replicationRuleSchema>;
export type ReplicationRuleInput = z.input<typeof replicationRuleSchema>;

export const replicationConfigSchema = z
  .object({
    registries: z
      .array(replicationRegistrySchema)
      .superRefine((registries, ctx) => {
        const seen = new Set<string>();
        registries.forEach((registry, i) => {
          if (seen.has(registry.name))
            ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `registry name ${JSON.stringify(registry.name)} is used twice` });
          seen.add(registry.name);
        });
      })
      .default([])
      .describe('Registries to replicate with: [{ name, urls, username, passwordFile | passwordEnv, caFile, … }]. See docs/replication.md.'),
    rules: z
      .array(replicationRuleSchema)
      .superRefine((rules, ctx) => {
        const seen = new Set<string>();
        rules.forEach((rule, i) => {
          if (seen.has(rule.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `rule name ${JSON.stringify(rule.name)} is used twice` });
          seen.add(rule.name);
        });
      })
      .default([])
      .describe(
        'What is copied where: [{ name, direction: push | pull, registry, repositories, tags, tagRegex, tagSemver, destination, conflict, deletes, … }]. See docs/replication.md.',
      ),
    leaseSeconds: z
      .number()
      .min(1)
      .max(3600)
      .default(60)
      .describe('A process running a rule holds it this long, renewed while it runs, so one run per rule goes on across processes.'),
    runTimeoutSeconds: z
      .number()
      .min(1)
      .default(600)
      .describe('A run holding its rule this long without progress (no artifact finished) is taken over by another process.'),
  })
  .strict()
  .superRefine((section, ctx) => {
    const names = new Set(section.registries.map((r) => r.name));
    section.rules.forEach((rule, i) => {
      if (!names.has(rule.registry))
        ctx.addIssue({
          code: 'custom',
          path: ['rules', i, 'registry'],
          message: `no registry named ${JSON.stringify(rule.registry)} in replication.registries${names.size > 0 ? ` (there are: ${[...names].join(', ')})` : ''}`,
        });
    });
    if (section.runTimeoutSeconds < section.leaseSeconds)
      ctx.addIssue({ code: 'custom', path: ['runTimeoutSeconds'], message: 'must be at least leaseSeconds (a run renews its lease well within it)' });
  })
  .prefault({});

export type ReplicationConfig = z.output<typeof replicationConfigSchema>;
