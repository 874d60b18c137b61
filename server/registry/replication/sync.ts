// One rule's work on one tag or one repository: make the target match the source, as far as the
// rule covers it. The per-artifact record says what the rule last made the target's tag point at,
// which tells a tag the rule moved itself (follow the source) from one changed on the target by
// someone else (a conflict: skip, overwrite, or overwrite after keeping the old digest under a
// backup tag). Deletions go only when the rule says so, and only for tags the rule set.
import type { ReplicationMetadata } from '../../../storage-drivers/metadata/replication-types.js';
import { OciError } from '../../errors.js';
import { ArtifactCopier, type CopyOptions } from './copy.js';
import type { ManifestRef, ReplicationEndpoint } from './endpoint.js';
import type { ReplicationRule } from './rules.js';

/** What syncing needs of a compiled rule. */
export type RuleScope = Pick<ReplicationRule, 'name' | 'coversRepository' | 'coversTag' | 'targetName' | 'backupTagFor'> & {
  readonly config: Pick<ReplicationRule['config'], 'conflict' | 'deletes'>;
};

export type ArtifactState = 'synced' | 'copying' | 'failed' | 'conflict';

/** The per-artifact record (JSON in ReplicationMetadata), keyed `<target repository>:<tag>`. */
export interface ArtifactRecord {
  state: ArtifactState;
  sourceRepository: string;
  /** What the source's tag pointed at when last looked at. */
  sourceDigest?: string | undefined;
  /** What the rule last made the target's tag point at (confirmed). */
  syncedDigest?: string | undefined;
  /** Written before the target's tag is moved, so a crash or a race in between is not taken for a conflict. */
  pendingDigest?: string | undefined;
  /** ms: since when the target has not matched the source (lag), while not synced. */
  behindSince?: number | undefined;
  syncedAt?: number | undefined;
  error?: string | undefined;
}

export type TagOutcome =
  | 'copied'
  | 'in_sync'
  | 'conflict_skipped'
  | 'overwritten'
  | 'backed_up'
  | 'deleted'
  /** The source has no such tag and the rule does not delete (or the target's tag is not the rule's). */
  | 'not_on_source';

export interface TagResult {
  outcome: TagOutcome;
  sourceRepository: string;
  targetRepository: string;
  tag: string;
  digest?: string | undefined;
  /** Blob bytes sent to the target. */
  bytes: number;
}

export interface RuleSyncDeps {
  rule: RuleScope;
  source: ReplicationEndpoint;
  target: ReplicationEndpoint;
  records: ReplicationMetadata;
  copy: Omit<CopyOptions, 'signal'>;
  now(): number;
}

/** A tag delete by digest is refused when the target repository has more tags than this to check. */
const MAX_TAGS_CHECKED_FOR_DELETE = 10_000;

/** How the rule copies: its platform filter, referrers, chunk size and (when given) bandwidth cap. */
export function copyOptionsOf(rule: ReplicationRule, throttle?: CopyOptions['throttle']): Omit<CopyOptions, 'signal'> {
  return {
    platforms: rule.config.platforms.length > 0 ? (platform) => rule.matchesPlatform(platform) : undefined,
    referrers: rule.config.referrers,
    chunkBytes: rule.config.chunkBytes,
    throttle,
  };
}

export function artifactKey(targetRepo: string, tag: string): string {
  return `${targetRepo}:${tag}`;
}

export class RuleSync {
  constructor(private readonly deps: RuleSyncDeps) {}

  /** Makes the target's tag match the source's (or go, when the rule deletes); the record says how it went. */
  async syncTag(sourceRepo: string, tag: string, signal: AbortSignal): Promise<TagResult> {
    const { rule, source, target } = this.deps;
    const targetRepo = this.targetOf(sourceRepo);
    const key = artifactKey(targetRepo, tag);
    const base = { sourceRepository: sourceRepo, targetRepository: targetRepo, tag, bytes: 0 };
    const record = await this.read(key);
    const [sourceHead, targetHead] = await Promise.all([source.headManifest(sourceRepo, tag, signal), target.headManifest(targetRepo, tag, signal)]);
    try {
      if (!sourceHead) return { ...base, outcome: await this.sourceTagGone(sourceRepo, targetRepo, tag, key, record, targetHead, signal) };
      if (targetHead?.digest === sourceHead.digest) {
        // In step; referrers added since still follow.
        await this.copier(signal).copyReferrers(sourceRepo, targetRepo, sourceHead.digest);
        if (record?.state !== 'synced' || record.syncedDigest !== sourceHead.digest) {
          await this.write(key, {
            state: 'synced',
            sourceRepository: sourceRepo,
            sourceDigest: sourceHead.digest,
            syncedDigest: sourceHead.digest,
            syncedAt: this.deps.now(),
          });
        }
        return { ...base, outcome: 'in_sync', digest: sourceHead.digest };
      }
      const ours = targetHead === undefined || targetHead.digest === record?.syncedDigest || targetHead.digest === record?.pendingDigest;
      const backupTag = !ours && rule.config.conflict === 'backup' ? rule.backupTagFor(tag, targetHead.digest) : undefined;
      if (!ours && (rule.config.conflict === 'skip' || (rule.config.conflict === 'backup' && backupTag === undefined))) {
        await this.write(key, {
          ...record,
          state: 'conflict',
          sourceRepository: sourceRepo,
          sourceDigest: sourceHead.digest,
          behindSince: record?.behindSince ?? this.deps.now(),
          error:
            rule.config.conflict === 'skip'
              ? `the target's tag points at ${targetHead.digest}, which this rule did not put there; the rule's conflict policy is skip`
              : `the target's tag points at ${targetHead.digest}, which this rule did not put there, and its backup tag would be longer than 128 characters; not overwritten`,
        });
        return { ...base, outcome: 'conflict_skipped', digest: sourceHead.digest };
      }
      if (backupTag !== undefined && targetHead) await this.backUp(targetRepo, backupTag, targetHead, signal);
      const bytes = await this.copyTag(sourceRepo, targetRepo, tag, key, record, sourceHead, signal);
      const outcome: TagOutcome = ours ? 'copied' : rule.config.conflict === 'backup' ? 'backed_up' : 'overwritten';
      return { ...base, outcome, digest: sourceHead.digest, bytes };
    } catch (err) {
      await this.write(key, {
        ...record,
        state: 'failed',
        sourceRepository: sourceRepo,
        sourceDigest: sourceHead?.digest ?? record?.sourceDigest,
        behindSince: record?.behindSince ?? this.deps.now(),
        error: err instanceof Error ? err.message : String(err),
      }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Copies one manifest by digest, untagged (a referrer pushed after its subject, say); only when the
   * target has `requires` (its subject), since the subject's own copy brings its referrers otherwise.
   */
  async syncDigest(sourceRepo: string, digest: string, requires: string | undefined, signal: AbortSignal): Promise<boolean> {
    const targetRepo = this.targetOf(sourceRepo);
    if (requires !== undefined && !(await this.deps.target.headManifest(targetRepo, requires, signal))) return false;
    const manifest = await this.deps.source.getManifest(sourceRepo, digest, signal);
    if (!manifest) return false;
    await this.copier(signal).copy(sourceRepo, targetRepo, manifest, []);
    return true;
  }

  /**
   * Every tag of one source repository the rule covers; with deletes, also the target's covered tags
   * the source no longer has. `each` hears every tag's result; a tag that fails is reported and the
   * others go on. Returns the failures.
   */
  async reconcileRepository(
    sourceRepo: string,
    options: { signal: AbortSignal; concurrency: number; each(result: TagResult | { failed: string; tag: string; error: Error }): void },
  ): Promise<number> {
    const { rule, source, target } = this.deps;
    const { signal } = options;
    const sourceTags = ((await source.tags(sourceRepo, signal)) ?? []).filter((t) => rule.coversTag(t));
    const tags = new Set(sourceTags);
    if (rule.config.deletes) {
      const targetTags = (await target.tags(this.targetOf(sourceRepo), signal)) ?? [];
      for (const t of targetTags) if (rule.coversTag(t)) tags.add(t);
    }
    const queue = [...tags].sort();
    let failures = 0;
    const worker = async (): Promise<void> => {
      for (let tag = queue.shift(); tag !== undefined; tag = queue.shift()) {
        signal.throwIfAborted();
        try {
          options.each(await this.syncTag(sourceRepo, tag, signal));
        } catch (err) {
          if (signal.aborted) throw err;
          failures++;
          options.each({ failed: sourceRepo, tag, error: err instanceof Error ? err : new Error(String(err)) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, queue.length)) }, worker));
    return failures;
  }

  private async copyTag(
    sourceRepo: string,
    targetRepo: string,
    tag: string,
    key: string,
    record: ArtifactRecord | undefined,
    sourceHead: ManifestRef,
    signal: AbortSignal,
  ): Promise<number> {
    // By digest: a tag moved on the source mid-copy cannot mix two images.
    const manifest = await this.fetch(sourceRepo, sourceHead.digest, signal);
    const behindSince = record?.behindSince ?? this.deps.now();
    await this.write(key, {
      ...record,
      state: 'copying',
      sourceRepository: sourceRepo,
      sourceDigest: manifest.digest,
      pendingDigest: manifest.digest,
      behindSince,
    });
    const copier = this.copier(signal);
    await copier.copy(sourceRepo, targetRepo, manifest, [tag]);
    await this.write(key, {
      state: 'synced',
      sourceRepository: sourceRepo,
      sourceDigest: manifest.digest,
      syncedDigest: manifest.digest,
      syncedAt: this.deps.now(),
    });
    return copier.counts.bytes;
  }

  /** The target's current manifest goes under the backup tag before the rule overwrites the tag. */
  private async backUp(targetRepo: string, backupTag: string, head: ManifestRef, signal: AbortSignal): Promise<void> {
    const current = await this.deps.target.getManifest(targetRepo, head.digest, signal);
    if (!current) return;
    await this.deps.target.putManifest(targetRepo, backupTag, current, signal);
  }

  private async sourceTagGone(
    sourceRepo: string,
    targetRepo: string,
    tag: string,
    key: string,
    record: ArtifactRecord | undefined,
    targetHead: ManifestRef | undefined,
    signal: AbortSignal,
  ): Promise<TagOutcome> {
    const { rule, target } = this.deps;
    if (!rule.config.deletes || !targetHead) {
      if (!targetHead && record) await this.deps.records.putArtifact(rule.name, key, undefined);
      return 'not_on_source';
    }
    // Only a tag this rule put there: one made on the target by someone else is not the rule's to delete.
    if (targetHead.digest !== record?.syncedDigest && targetHead.digest !== record?.pendingDigest) return 'not_on_source';
    const result = await target.deleteTag(targetRepo, tag, signal);
    if (result === 'unsupported') await this.deleteByDigest(sourceRepo, targetRepo, tag, targetHead.digest, signal);
    await this.deps.records.putArtifact(rule.name, key, undefined);
    return 'deleted';
  }

  /**
   * A target that cannot delete a tag (distribution 2.x) deletes by digest, which drops every tag
   * pointing there: done only when each of those is the rule's (it put the digest there) and gone
   * from the source, so two tags deleted together on the source go together instead of each
   * waiting for the other forever.
   */
  private async deleteByDigest(sourceRepo: string, targetRepo: string, tag: string, digest: string, signal: AbortSignal): Promise<void> {
    const { target, source, rule } = this.deps;
    const tags = (await target.tags(targetRepo, signal)) ?? [];
    if (tags.length > MAX_TAGS_CHECKED_FOR_DELETE) {
      throw new OciError(
        'UNSUPPORTED',
        `${target.name}:${targetRepo} cannot delete tag ${tag} by itself and has too many tags (${tags.length}) to check a delete by digest is safe`,
      );
    }
    const alsoGoing: string[] = [];
    for (const other of tags) {
      if (other === tag) continue;
      const head = await target.headManifest(targetRepo, other, signal);
      if (head?.digest !== digest) continue;
      const why = !rule.coversTag(other)
        ? 'which this rule does not cover'
        : (await source.headManifest(sourceRepo, other, signal))
          ? `which ${source.name}:${sourceRepo} still has`
          : (await this.read(artifactKey(targetRepo, other)))?.syncedDigest !== digest
            ? 'which this rule did not put there'
            : undefined;
      if (why !== undefined)
        throw new OciError(
          'UNSUPPORTED',
          `${target.name}:${targetRepo} cannot delete tag ${tag} by itself, and deleting ${digest} would also drop tag ${other}, ${why}`,
        );
      alsoGoing.push(other);
    }
    await target.deleteManifest(targetRepo, digest, signal);
    for (const other of alsoGoing) await this.deps.records.putArtifact(rule.name, artifactKey(targetRepo, other), undefined);
  }

  private targetOf(sourceRepo: string): string {
    const target = this.deps.rule.targetName(sourceRepo);
    if (target === undefined) throw new OciError('NAME_INVALID', `rule ${this.deps.rule.name} does not cover repository ${sourceRepo}`);
    return target;
  }

  private copier(signal: AbortSignal): ArtifactCopier {
    return new ArtifactCopier(this.deps.source, this.deps.target, { ...this.deps.copy, signal });
  }

  private async fetch(sourceRepo: string, digest: string, signal: AbortSignal) {
    const manifest = await this.deps.source.getManifest(sourceRepo, digest, signal);
    if (!manifest) throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest} went from ${this.deps.source.name}:${sourceRepo} while it was being replicated`);
    return manifest;
  }

  private async read(key: string): Promise<ArtifactRecord | undefined> {
    const [raw] = await this.deps.records.getArtifacts(this.deps.rule.name, [key]);
    return raw === undefined ? undefined : (JSON.parse(raw) as ArtifactRecord);
  }

  private async write(key: string, record: ArtifactRecord): Promise<void> {
    await this.deps.records.putArtifact(this.deps.rule.name, key, JSON.stringify(record));
  }
}
