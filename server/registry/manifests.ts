import { BlobNotFoundError, type BlobDriver } from '../../storage-drivers/blob/types.js';
import type { LookupCoalescer } from './lookup-coalescer.js';
import type { TokenImmutability } from '../../auth/tag-patterns.js';
import {
  ImmutableTagError,
  MissingReferencesError,
  TagsChangedError,
  type Digest,
  type ManifestRecord,
  type MetadataStore,
  type PutManifestResult,
} from '../../storage-drivers/metadata/types.js';
import { OciError } from '../errors.js';
import { matchesDigest, type Integrity } from './integrity.js';
import { blobKey } from './keys.js';
import { isExternal, MEDIA_TYPES, parseManifest } from './manifest-parse.js';
import { assertTag, digestOf, parseDigest, type DigestAlgorithm, type ParsedDigest, type Reference } from './references.js';
import { assertRepositoryKnown } from './repositories.js';
import type { GcUsage, HeldPin } from './gc/usage.js';
import { ImmutableTagRefusal } from './immutable/refusal.js';
import { ImmutableTagRules } from './immutable/rules.js';
import type { Quotas } from './quotas/service.js';
import type { EventOrigin } from '../../storage-drivers/metadata/event-types.js';

/** Manifests up to this size are also kept in metadata, so a pull by tag needs no storage read. */
const INLINE_LIMIT = 16 * 1024;

export interface ManifestOptions {
  requireIndexChildren: boolean;
  /** Which tags may be set once and never moved or deleted; none unless given. */
  immutableTags?: ImmutableTagRules;
  /** Concurrent resolutions of one tag share metadata lookups (lookup-coalescer.ts); off unless given. */
  tagLookups?: LookupCoalescer<ManifestRecord | undefined>;
}

/**
 * A manifest delete rechecks this many times when the manifest's tags change between the check and
 * the delete (a push adding a tag): each retry sees the new tags, so none is dropped unchecked.
 */
const DELETE_ATTEMPTS = 5;

export interface StoredManifest {
  record: ManifestRecord;
  bytes: Buffer;
}

export interface PutResult {
  digest: Digest;
  subject?: Digest;
  tags: string[];
  previousTags: Record<string, Digest | undefined>;
}

export interface Referrer {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function missingError(repo: string, missing: Digest[]): OciError {
  return new OciError(
    'MANIFEST_BLOB_UNKNOWN',
    `the manifest references ${missing.length === 1 ? 'content' : `${missing.length} items`} not pushed to ${repo}: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
    missing.slice(0, 50).map((d) => ({ digest: d })),
  );
}

export class ManifestService {
  private readonly immutable: ImmutableTagRules;

  constructor(
    private readonly driver: BlobDriver,
    private readonly metadata: MetadataStore,
    private readonly options: ManifestOptions,
    private readonly integrity: Integrity,
    private readonly usage: GcUsage,
    private readonly quotas?: Quotas,
  ) {
    this.immutable = options.immutableTags ?? new ImmutableTagRules([]);
  }

  /** Resolves a tag or digest to the manifest record linked in `repo`. */
  async resolve(repo: string, reference: Reference): Promise<ManifestRecord> {
    const record = reference.kind === 'tag' ? await this.taggedManifest(repo, reference.tag) : await this.metadata.getManifest(repo, reference.digest.value);
    if (!record) {
      await assertRepositoryKnown(this.metadata, repo);
      const what = reference.kind === 'tag' ? `tag ${reference.tag}` : `manifest ${reference.digest.value}`;
      throw new OciError('MANIFEST_UNKNOWN', `${what} is not in repository ${repo}`);
    }
    return record;
  }

  private taggedManifest(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    const lookups = this.options.tagLookups;
    const load = () => this.metadata.getTaggedManifest(repo, tag);
    // A tag cannot hold a NUL byte (tags are [A-Za-z0-9_.-]), so the key is unambiguous.
    return lookups ? lookups.get(`${repo}\0${tag}`, load) : load();
  }

  /**
   * The manifest's bytes. Those read from storage are always hashed first (a manifest is at most
   * manifests.maxBytes): a corrupt one is quarantined and answered as unknown, never sent.
   */
  async read(record: ManifestRecord): Promise<Buffer> {
    if (record.inline !== undefined) return Buffer.from(record.inline, 'base64');
    const digest = parseDigest(record.digest);
    let bytes: Buffer;
    try {
      bytes = await this.driver.get(blobKey(digest));
    } catch (err) {
      if (!(err instanceof BlobNotFoundError)) throw err;
      await this.integrity.missing(digest, 'manifest', 'read');
      throw new OciError(
        'MANIFEST_UNKNOWN',
        `manifest ${digest.value} is recorded but storage does not hold its bytes (missing or quarantined as corrupt); push it again`,
      );
    }
    if (bytes.length !== record.size || !matchesDigest(bytes, digest)) {
      await this.integrity.quarantine(digest, bytes.length !== record.size ? 'size_mismatch' : 'digest_mismatch', 'manifest', 'read');
      throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest.value} was found corrupt in storage and has been quarantined; push it again`);
    }
    return bytes;
  }

  /**
   * Stores a manifest: checks it, checks everything it references is in `repo`, writes the bytes to
   * content-addressed storage, then links it and moves its tags in one metadata step.
   */
  async put(
    repo: string,
    reference: Reference,
    extraTags: string[],
    bytes: Buffer,
    contentType: string | undefined,
    token?: TokenImmutability,
    origin?: EventOrigin,
  ): Promise<PutResult> {
    const algorithm = reference.kind === 'digest' ? reference.digest.algorithm : 'sha256';
    const digest = digestOf(bytes, algorithm);
    if (reference.kind === 'digest' && reference.digest.value !== digest) {
      throw new OciError('DIGEST_INVALID', `the manifest's digest is ${digest}, not ${reference.digest.value}`);
    }
    const tags = [...new Set([...(reference.kind === 'tag' ? [reference.tag] : []), ...extraTags.map(assertTag)])];
    const parsed = parseManifest(bytes, contentType);
    const immutable = tags.filter((tag) => this.immutable.match(repo, tag, token) !== undefined);
    // Refused before any byte is stored when it can be told already; the store's atomic step decides races.
    for (const tag of immutable) {
      const current = await this.metadata.resolveTag(repo, tag);
      if (current !== undefined && current !== digest) throw this.overwriteRefusal(repo, tag, current, token);
    }
    const referenced = [...parsed.blobs.filter((b) => !isExternal(b)), ...parsed.children].map((d) => d.digest);
    const pinned = await this.pinForPut(digest, referenced);
    try {
      return await this.putPinned(repo, digest, tags, immutable, bytes, parsed, token, origin);
    } finally {
      await pinned.release();
    }
  }

  /**
   * Stores a manifest fetched from a proxy namespace's upstream, tagged `tags`. Its blobs and children
   * need not be here: a pull-through cache fetches a layer only when a client asks for it (the blob
   * route fills it then). Everything else is an ordinary put: pinned against GC, charged to the
   * namespace's quota, recorded with its references, so GC and retention treat it as pushed content.
   * Immutable-tag rules do not apply: the upstream decides where its tags point.
   */
  async cache(repo: string, tags: string[], bytes: Buffer, contentType: string, algorithm: DigestAlgorithm = 'sha256'): Promise<PutResult> {
    const digest = digestOf(bytes, algorithm);
    const parsed = parseManifest(bytes, contentType);
    // Only the manifest's own bytes are pinned: the content it references is not here yet.
    const pinned = await this.pinForPut(digest, []);
    try {
      return await this.putPinned(repo, digest, tags, [], bytes, parsed, undefined, undefined, true);
    } finally {
      await pinned.release();
    }
  }

  private overwriteRefusal(repo: string, tag: string, current: Digest, token: TokenImmutability | undefined): ImmutableTagRefusal {
    const rule = this.immutable.match(repo, tag, token)?.rule ?? 'unknown';
    return new ImmutableTagRefusal({ operation: 'overwrite', repository: repo, tag, digest: current, rule });
  }

  /**
   * Pins the manifest and what it references, so GC cannot delete any of it before the manifest is
   * linked. Content GC is deleting is unknown (the client pushes it again); the manifest's own bytes
   * being deleted are waited for, since this request stores them again.
   */
  private async pinForPut(digest: Digest, referenced: Digest[]): Promise<HeldPin> {
    let pinned = await this.usage.pin([digest, ...referenced]);
    if ('deleting' in pinned && pinned.deleting.every((d) => d === digest)) pinned = await this.usage.pinWaiting([digest, ...referenced]);
    if ('pin' in pinned) return pinned.pin;
    const gone = pinned.deleting.filter((d) => d !== digest);
    if (gone.length === 0) throw new OciError('UNAVAILABLE', `manifest ${digest} is being deleted by garbage collection; push it again in a moment`);
    throw new OciError(
      'MANIFEST_BLOB_UNKNOWN',
      `the manifest references content that garbage collection is deleting: ${gone.slice(0, 5).join(', ')}; push it again`,
      gone.slice(0, 50).map((d) => ({ digest: d })),
    );
  }

  private async putPinned(
    repo: string,
    digest: Digest,
    tags: string[],
    immutable: string[],
    bytes: Buffer,
    parsed: ReturnType<typeof parseManifest>,
    token: TokenImmutability | undefined,
    origin: EventOrigin | undefined,
    lazyReferences = false,
  ): Promise<PutResult> {
    const missing: string[] = [];
    for (const blob of lazyReferences ? [] : parsed.blobs) {
      if (isExternal(blob)) continue;
      if (!(await this.metadata.getBlobLink(repo, blob.digest))) missing.push(blob.digest);
    }
    if (this.options.requireIndexChildren && !lazyReferences) {
      for (const child of parsed.children) {
        if (!(await this.metadata.getManifest(repo, child.digest))) missing.push(child.digest);
      }
    }
    if (missing.length > 0) throw missingError(repo, missing);

    const record: ManifestRecord = {
      digest,
      mediaType: parsed.mediaType,
      size: bytes.length,
      references: [...parsed.blobs, ...parsed.children].map((d) => d.digest),
      createdAt: Date.now(),
    };
    if (parsed.artifactType !== undefined) record.artifactType = parsed.artifactType;
    if (parsed.annotations) record.annotations = parsed.annotations;
    if (parsed.subject) record.subject = parsed.subject.digest;
    if (bytes.length <= INLINE_LIMIT) record.inline = bytes.toString('base64');

    // Its blobs are linked in the repository, so the namespace already counts them: what is new here
    // is the manifest's own bytes, counted (or refused) before they are stored and linked.
    await this.quotas?.charge(repo, 'manifest', digest, bytes.length, 'manifest');
    try {
      return await this.commit(repo, record, tags, immutable, bytes, parsed, token, origin, lazyReferences);
    } catch (err) {
      await this.quotas?.undoCharge(repo, 'manifest', digest).catch(() => undefined);
      throw err;
    }
  }

  private async commit(
    repo: string,
    record: ManifestRecord,
    tags: string[],
    immutable: string[],
    bytes: Buffer,
    parsed: ReturnType<typeof parseManifest>,
    token: TokenImmutability | undefined,
    origin: EventOrigin | undefined,
    lazyReferences: boolean,
  ): Promise<PutResult> {
    const { digest } = record;
    // Content-addressed: bytes already stored under the digest (a re-tag, a repeated push) are kept.
    await this.driver.put(blobKey(parseDigest(digest)), bytes, { keep: 'same-size' });
    // The links checked above are checked again in the commit itself: garbage collection may remove a
    // repository's stale link to a blob in between, and then the client pushes the blob again.
    const required = lazyReferences
      ? { blobs: [], manifests: [] }
      : {
          blobs: parsed.blobs.filter((b) => !isExternal(b)).map((b) => b.digest),
          manifests: this.options.requireIndexChildren ? parsed.children.map((c) => c.digest) : [],
        };
    let previousTags: PutManifestResult['previousTags'];
    try {
      ({ previousTags } = await this.metadata.putManifest(repo, record, tags, {
        required,
        immutable: immutable.length > 0 ? immutable : undefined,
        event: origin,
      }));
    } catch (err) {
      if (err instanceof ImmutableTagError) throw this.overwriteRefusal(repo, err.tag, err.current, token);
      if (!(err instanceof MissingReferencesError)) throw err;
      throw missingError(repo, err.digests);
    }
    const untagged = Object.values(previousTags).filter((d): d is Digest => d !== undefined && d !== digest);
    await this.usage.queueUntagged(repo, tags.length === 0 ? [digest, ...untagged] : untagged);
    const result: PutResult = { digest, tags, previousTags };
    if (record.subject) result.subject = record.subject;
    return result;
  }

  /**
   * Deletes the manifest; GC then collects what only it referenced, and its referrers (the spec's rule).
   * Refused while an immutable tag points at it. The delete takes effect only with exactly the tags
   * that were checked; when a push changed them in between, they are checked again.
   */
  async deleteByDigest(repo: string, digest: ParsedDigest, token?: TokenImmutability, origin?: EventOrigin): Promise<string[]> {
    const record = await this.metadata.getManifest(repo, digest.value);
    if (record === undefined) throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest.value} is not in repository ${repo}`);
    const referrers = (await this.metadata.listReferrers(repo, digest.value)).map((r) => r.digest);
    for (let attempt = 1; ; attempt++) {
      const tags = await this.metadata.manifestTags(repo, digest.value);
      for (const tag of tags) {
        const match = this.immutable.match(repo, tag, token);
        if (match) throw new ImmutableTagRefusal({ operation: 'delete_manifest', repository: repo, tag, digest: digest.value, rule: match.rule });
      }
      // Queued before and after: a crash in between still leaves the work queued, and a GC that judged
      // the content in between sees it queued again.
      await this.usage.queueAfterManifestDelete(repo, record, referrers);
      let dropped: string[] | undefined;
      try {
        dropped = await this.metadata.deleteManifest(repo, digest.value, { expectedTags: tags, event: origin });
      } catch (err) {
        if (!(err instanceof TagsChangedError)) throw err;
        if (attempt < DELETE_ATTEMPTS) continue;
        throw new OciError('UNAVAILABLE', `the tags of manifest ${digest.value} in ${repo} kept changing while it was being deleted; try again`, undefined, {
          'Retry-After': '1',
        });
      }
      if (dropped === undefined) throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest.value} is not in repository ${repo}`);
      await this.usage.queueAfterManifestDelete(repo, record, referrers);
      return dropped;
    }
  }

  /** Removes a tag, unless it is immutable; the manifest stays. */
  async deleteTag(repo: string, tag: string, token?: TokenImmutability, origin?: EventOrigin): Promise<void> {
    const digest = await this.metadata.resolveTag(repo, tag);
    if (digest === undefined) throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} is not in repository ${repo}`);
    const match = this.immutable.match(repo, tag, token);
    if (match) throw new ImmutableTagRefusal({ operation: 'delete_tag', repository: repo, tag, digest, rule: match.rule });
    // Immutability goes by the name alone, so a push moving this tag in between changes nothing here.
    if (!(await this.metadata.deleteTag(repo, tag, { event: origin }))) throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} is not in repository ${repo}`);
    await this.usage.queueUntagged(repo, [digest]);
  }

  /** The rules deciding which tags are immutable (for the management API). */
  get immutableTags(): ImmutableTagRules {
    return this.immutable;
  }

  /**
   * Manifests in `repo` whose subject is `subject`: those recorded at push, plus (the spec's upgrade
   * rule) any listed in a `<alg>-<hex>` fallback-tag index that a client maintained for that subject.
   */
  async referrers(repo: string, subject: ParsedDigest, artifactType: string | undefined): Promise<Referrer[]> {
    const byDigest = new Map<string, ManifestRecord>();
    for (const r of await this.metadata.listReferrers(repo, subject.value)) byDigest.set(r.digest, r);
    const fallbackTag = `${subject.algorithm}-${subject.hex}`.slice(0, 128);
    const indexDigest = await this.metadata.resolveTag(repo, fallbackTag);
    const index = indexDigest ? await this.metadata.getManifest(repo, indexDigest) : undefined;
    if (index && index.mediaType === MEDIA_TYPES.ociIndex) {
      for (const child of index.references) {
        if (byDigest.has(child)) continue;
        const record = await this.metadata.getManifest(repo, child);
        if (record?.subject === subject.value) byDigest.set(child, record);
      }
    }
    return [...byDigest.values()]
      .filter((r) => artifactType === undefined || r.artifactType === artifactType)
      .sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))
      .map((r) => {
        const d: Referrer = { mediaType: r.mediaType, digest: r.digest, size: r.size };
        if (r.artifactType !== undefined) d.artifactType = r.artifactType;
        if (r.annotations) d.annotations = r.annotations;
        return d;
      });
  }
}
