// A replication rule's filters and name rewrite, compiled once from its config: the copier, the
// reconciler and the event trigger all ask the rule the same questions, so they cannot disagree on what
// it covers. What a delete may touch is decided by sourceName: a target the rule would not have
// written is never the rule's to delete.
import { globToRegExp } from '../../../auth/glob.js';
import { isValidName } from '../references.js';
import { renderBackupTag } from './backup-tag.js';
import type { ReplicationRuleConfig } from './config.js';
import { parsePlatform, platformMatches, type PlatformLike } from './platforms.js';
import { parseRange, parseVersion } from './semver.js';

export interface ReplicationRule {
  readonly name: string;
  readonly direction: 'push' | 'pull';
  /** The other side, as named in replication.registries. */
  readonly registry: string;
  /** Whether events trigger the rule: push rules only, unless onPush: false. */
  readonly onPush: boolean;
  readonly config: ReplicationRuleConfig;
  /** Whether the rule copies source repository `name` (its filters pass and it has a valid target name). */
  coversRepository(name: string): boolean;
  /** The tag globs, and the regex and semver range when given, all pass. */
  coversTag(tag: string): boolean;
  /** The target repository for a source one; undefined when the rule does not cover it. */
  targetName(sourceName: string): string | undefined;
  /** The source repository whose copy `targetName` is; undefined when the rule would not write it. */
  sourceName(targetName: string): string | undefined;
  /** Whether an index entry of this platform is copied (always, without a platform filter). */
  matchesPlatform(platform: PlatformLike): boolean;
  /** Where conflict: backup keeps the replaced digest of `tag`; undefined when that is no valid tag (too long). */
  backupTagFor(tag: string, digest: string): string | undefined;
  /** The repository patterns that are plain names and covered: what a pull rule copies from a registry without a catalog. */
  exactRepositories(): string[];
}

/** `team/apps/` and `team/apps` are the same prefix. */
export function normalisePrefix(text: string): string {
  return text.replace(/\/+$/, '');
}

/** A glob without wildcards: one repository name. */
export function isPlainName(glob: string): boolean {
  return !/[*?]/.test(glob);
}

/** The part of a glob before its first wildcard: every name it matches starts with this. */
export function literalPrefix(glob: string): string {
  const wildcard = glob.search(/[*?]/);
  return wildcard < 0 ? glob : glob.slice(0, wildcard);
}

/** `prefix/rest` → `rest`, '' for `prefix` itself, undefined when `name` is not under `prefix` (whole components only). */
function underPrefix(name: string, prefix: string | undefined): string | undefined {
  if (prefix === undefined) return name;
  if (name === prefix) return '';
  return name.startsWith(`${prefix}/`) ? name.slice(prefix.length + 1) : undefined;
}

function joinPrefix(prefix: string | undefined, rest: string): string {
  if (prefix === undefined) return rest;
  return rest === '' ? prefix : `${prefix}/${rest}`;
}

/** Compiles a rule validated by replicationRuleSchema (a bad regex or range throws, as at start-up). */
export function compileRule(config: ReplicationRuleConfig): ReplicationRule {
  const include = config.repositories.map((glob) => globToRegExp(glob));
  const exclude = config.excludeRepositories.map((glob) => globToRegExp(glob));
  const tagGlobs = config.tags.map((glob) => globToRegExp(glob));
  const tagRegex = config.tagRegex === undefined ? undefined : new RegExp(config.tagRegex);
  const semver = config.tagSemver === undefined ? undefined : parseRange(config.tagSemver);
  const platforms = config.platforms.map(parsePlatform);
  const { stripPrefix, addPrefix } = config.destination;

  const targetName = (source: string): string | undefined => {
    const rest = underPrefix(source, stripPrefix);
    if (rest === undefined) return undefined;
    const target = joinPrefix(addPrefix, rest);
    return isValidName(target) ? target : undefined;
  };
  const coversRepository = (name: string): boolean =>
    isValidName(name) && include.some((re) => re.test(name)) && !exclude.some((re) => re.test(name)) && targetName(name) !== undefined;

  return {
    name: config.name,
    direction: config.direction,
    registry: config.registry,
    onPush: config.direction === 'push' && config.onPush !== false,
    config,
    coversRepository,
    coversTag(tag) {
      if (!tagGlobs.some((re) => re.test(tag))) return false;
      if (tagRegex !== undefined && !tagRegex.test(tag)) return false;
      if (semver !== undefined) {
        const version = parseVersion(tag);
        if (version === undefined || !semver.test(version)) return false;
      }
      return true;
    },
    targetName: (source) => (coversRepository(source) ? targetName(source) : undefined),
    sourceName(target) {
      const rest = underPrefix(target, addPrefix);
      if (rest === undefined) return undefined;
      const source = joinPrefix(stripPrefix, rest);
      // Two source names must never claim one target; checking the round trip keeps that true whatever the prefixes.
      return source !== '' && coversRepository(source) && targetName(source) === target ? source : undefined;
    },
    matchesPlatform: (platform) => platforms.length === 0 || platforms.some((filter) => platformMatches(filter, platform)),
    backupTagFor: (tag, digest) => renderBackupTag(config.backupTag, tag, digest),
    exactRepositories: () => [...new Set(config.repositories.filter((glob) => isPlainName(glob) && coversRepository(glob)))],
  };
}
