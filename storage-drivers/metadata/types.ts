import type { EventMetadata, EventOrigin } from './event-types.js';
import type { GcMetadata } from './gc-types.js';
import type { PullMetadata } from './pull-types.js';
import type { QuotaMetadata } from './quota-types.js';
import type { ReplicationMetadata } from './replication-types.js';
import type { RetentionMetadata } from './retention-types.js';

/** A content digest, `algorithm:hex`, already validated by the caller. */
export type Digest = string;

/** What metadata keeps about a manifest (its bytes live in blob storage, content-addressed). */
export interface ManifestRecord {
  digest: Digest;
  mediaType: string;
  size: number;
  /** The manifest's `artifactType`, else its config media type (image manifests); absent for plain indexes. */
  artifactType?: string;
  annotations?: Record<string, string>;
  /** Digest of the `subject` descriptor's target, if the manifest has one. */
  subject?: Digest;
  /** Digests this manifest references: config, layers, blobs, child manifests. */
  references: Digest[];
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** The manifest bytes, base64, when small enough to keep in metadata (saves a storage read). */
  inline?: string;
}

export interface BlobLink {
  digest: Digest;
  size: number;
}

/** A blob link plus whether storage was last found not to hold the blob's bytes (see markBlobMissing). */
export interface CheckedBlobLink extends BlobLink {
  missing: boolean;
  /** Garbage collection is deleting the digest: answer as unknown, so the client pushes it again. */
  deleting: boolean;
}

/**
 * A resumable blob upload: the one record that owns its state. The offset, the hash state and the
 * driver's checkpoint change together in one compare-and-set, so no second copy (a file's size, a
 * state object in the bucket, a process's memory) can contradict it.
 */
export interface UploadSession {
  id: string;
  repo: string;
  /** Bytes received and durably stored so far; bytes the driver holds beyond it were never acknowledged. */
  offset: number;
  /** Bumped on every change; compare-and-set key for updateUpload. */
  revision: number;
  /** While a request is writing: ms since epoch until which other writers are refused (renewed while it runs). */
  leaseUntil?: number;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
  /** The SHA-256 state after `offset` bytes (base64), when the chunks are hashed resumably. */
  hashState?: string;
  /** The driver's checkpoint state for the in-progress bytes (e.g. an S3 multipart upload id and its parts). */
  driverState?: string;
  /**
   * Set once a finish has hashed this session's own bytes and found `digest`: from here the finish
   * only moves and links them, and a retry after a crash may complete it (for that digest only).
   */
  verified?: { digest: Digest; size: number };
}

export interface Page {
  /** At most this many entries; undefined: all. */
  n?: number | undefined;
  /** Start strictly after this value (byte order). */
  last?: string | undefined;
}

/**
 * What must already be in the repository for putManifest to link a manifest, checked in its atomic
 * step: garbage collection may remove a link between a request's own check and its commit.
 */
export interface RequiredReferences {
  /** Digests that must be linked as blobs (config, layers). */
  blobs: Digest[];
  /** Digests that must be manifests in the repository (an index's children, when required). */
  manifests: Digest[];
}

/** putManifest found required references missing and changed nothing. */
export class MissingReferencesError extends Error {
  constructor(readonly digests: Digest[]) {
    super(`not in the repository: ${digests.slice(0, 5).join(', ')}`);
    this.name = 'MissingReferencesError';
  }
}

/** putManifest refused: an immutable tag points at another manifest. Nothing changed. */
export class ImmutableTagError extends Error {
  constructor(
    readonly tag: string,
    readonly current: Digest,
  ) {
    super(`tag ${tag} is immutable and points at ${current}`);
    this.name = 'ImmutableTagError';
  }
}

/** deleteManifest refused: the manifest's tags are no longer the ones the caller checked. Nothing changed. */
export class TagsChangedError extends Error {
  constructor(readonly current: string[]) {
    super(`the manifest's tags changed: now ${current.length === 0 ? 'none' : current.slice(0, 5).join(', ')}`);
    this.name = 'TagsChangedError';
  }
}

/** A tag with what retention and the management API need: where it points and when it was pushed. */
export interface TagDetail {
  tag: string;
  digest: Digest;
  /** When the tag was last set by a push (ms since epoch): the manifest record's createdAt of that put. */
  pushedAt: number;
}

export interface PutManifestOptions {
  /** References that must be in the repository, checked in the atomic step. */
  required?: RequiredReferences | undefined;
  /** Tags that may be set only where they are new or already point at this manifest. */
  immutable?: string[] | undefined;
  /** Record the change in the event outbox, in the same atomic step (absent: no event). */
  event?: EventOrigin | undefined;
}

export interface DeleteManifestOptions {
  /** Delete only while exactly these tags point at the manifest (else TagsChangedError). */
  expectedTags?: string[] | undefined;
  event?: EventOrigin | undefined;
}

export interface DeleteTagOptions {
  /** Remove the tag only while it still points at this digest. */
  expected?: Digest | undefined;
  event?: EventOrigin | undefined;
}

export interface LinkBlobOptions {
  /** How the blob arrived: an upload (push, the default) or a mount from another repository. */
  via?: 'push' | 'mount' | undefined;
  fromRepository?: string | undefined;
  event?: EventOrigin | undefined;
}

export interface UnlinkBlobOptions {
  event?: EventOrigin | undefined;
}

export interface PutManifestResult {
  /** For each tag set: the digest it pointed at before, if any (audit: "tag moved"). */
  previousTags: Record<string, Digest | undefined>;
}

/**
 * Tags, manifest metadata, per-repository links, the catalog and upload sessions. Every method that
 * changes several keys does so atomically. Lists are in byte (ASCIIbetical) order.
 */
export interface MetadataStore {
  readonly name: string;

  /**
   * Links the manifest into `repo`, records it as a referrer of its subject, points `tags` at it; one
   * atomic step. For garbage collection it also records `repo` as a holder of the manifest and of every
   * reference (before the repository change), counts the references once per manifest newly linked, and
   * notes when a tag left a manifest. Callers pin those digests first (GcMetadata.pinBlobs).
   * Each tag's push time becomes `manifest.createdAt`. Tags in `options.immutable` may be set only where
   * they are new or already point at this manifest; otherwise it throws ImmutableTagError and changes
   * nothing. With `options.event`, a manifest_put record joins the outbox in the same step.
   */
  putManifest(repo: string, manifest: ManifestRecord, tags: string[], options?: PutManifestOptions): Promise<PutManifestResult>;
  /** The manifest, only if linked in `repo`. */
  getManifest(repo: string, digest: Digest): Promise<ManifestRecord | undefined>;
  /** getManifest for many digests in one batched read: the records in the order given, undefined where not linked. */
  getManifests(repo: string, digests: Digest[]): Promise<(ManifestRecord | undefined)[]>;
  /**
   * Unlinks the manifest from `repo`, drops the tags pointing at it, its referrer entry and its count
   * on each reference. Returns the dropped tags, or undefined when it was not linked. With
   * `expectedTags`, it throws TagsChangedError (changing nothing) unless exactly those tags point at it.
   * With `event`, a manifest_deleted record (when something was deleted) joins the outbox in the same step.
   */
  deleteManifest(repo: string, digest: Digest, options?: DeleteManifestOptions): Promise<string[] | undefined>;
  /** The tags pointing at the manifest in `repo`, in byte order. */
  manifestTags(repo: string, digest: Digest): Promise<string[]>;

  resolveTag(repo: string, tag: string): Promise<Digest | undefined>;
  /** The manifest a tag points at, in one round trip (the hot path of every pull by tag). */
  getTaggedManifest(repo: string, tag: string): Promise<ManifestRecord | undefined>;
  /**
   * Removes a tag; the manifest stays (and is noted as untagged now). With `expected`, only while the
   * tag still points at that digest. False when nothing was removed. With `event`, a tag_deleted record
   * (when removed) joins the outbox in the same step.
   */
  deleteTag(repo: string, tag: string, options?: DeleteTagOptions): Promise<boolean>;
  listTags(repo: string, page: Page): Promise<string[]>;
  /** Tags with their digest and push time, in byte order, paged like listTags. */
  listTagDetails(repo: string, page: Page): Promise<TagDetail[]>;

  /** Manifests in `repo` whose subject is `subject`. */
  listReferrers(repo: string, subject: Digest): Promise<ManifestRecord[]>;

  /**
   * Links the blob into `repo` and records `repo` as a holder of it (first). Callers pin it first.
   * With `event`, a blob_linked record joins the outbox in the same step.
   */
  linkBlob(repo: string, link: BlobLink, options?: LinkBlobOptions): Promise<void>;
  getBlobLink(repo: string, digest: Digest): Promise<BlobLink | undefined>;
  /** getBlobLink for many digests in one batched read: the links in the order given, undefined where not linked. */
  getBlobLinks(repo: string, digests: Digest[]): Promise<(BlobLink | undefined)[]>;
  /** Removes the link; the holder entry stays for garbage collection to check. With `event`, a blob_unlinked record (when removed). */
  unlinkBlob(repo: string, digest: Digest, options?: UnlinkBlobOptions): Promise<boolean>;
  /** Repositories in which the blob is linked (verified against each repository's link; for automatic mounts), at most `limit`. */
  blobRepositories(digest: Digest, limit: number): Promise<string[]>;

  /**
   * The link and the digest's "missing" mark in one round trip: the HEAD/GET fast path stays
   * metadata-only for healthy blobs and checks storage only for marked ones.
   */
  getCheckedBlobLink(repo: string, digest: Digest): Promise<CheckedBlobLink | undefined>;
  /**
   * Records that storage does not hold the digest's bytes (found missing, or quarantined as corrupt),
   * for every repository at once: HEAD must stop claiming the blob so clients push it again.
   */
  markBlobMissing(digest: Digest): Promise<void>;
  /** Drops the mark once the bytes are back in storage. */
  clearBlobMissing(digest: Digest): Promise<void>;

  /**
   * A coarse cross-process lease (background scrub): true when `holder` now holds `name` for `ttlMs`
   * (free, expired, or already its own, which renews it); false while another holder's lease runs.
   */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up if `holder` still holds it. */
  releaseLease(name: string, holder: string): Promise<void>;

  /** True once anything (blob or manifest) was ever linked in `repo`. */
  repositoryExists(repo: string): Promise<boolean>;
  listRepositories(page: Page): Promise<string[]>;

  createUpload(session: UploadSession): Promise<void>;
  getUpload(id: string): Promise<UploadSession | undefined>;
  /**
   * Compare-and-set: replaces the session only if its stored revision is still `expectedRevision`
   * (callers pass `next.revision = expectedRevision + 1`). Returns false (nothing changed) when
   * another request changed it first, or it is gone.
   */
  updateUpload(id: string, expectedRevision: number, next: UploadSession): Promise<boolean>;
  deleteUpload(id: string): Promise<void>;
  /** Sessions last updated before `updatedBefore` (ms since epoch), for the expiry sweep. */
  listStaleUploads(updatedBefore: number, limit: number): Promise<UploadSession[]>;

  /** Garbage collection's records and queue (gc-types.ts). */
  readonly gc: GcMetadata;
  /** Pull statistics: counts per repository and tag, daily series (pull-types.ts). */
  readonly pulls: PullMetadata;

  /** Storage quotas' per-namespace records (quota-types.ts). */
  readonly quotas: QuotaMetadata;
  /** The retention runner's shared state and the untagged listing its untagged rule reads (retention-types.ts). */
  readonly retention: RetentionMetadata;
  /** Replication's per-rule status (compare-and-set) and per-artifact records (replication-types.ts). */
  readonly replication: ReplicationMetadata;
  /** The event log the mutations' `event` option writes to, endpoints' delivery state, dead letters (event-types.ts). */
  readonly events: EventMetadata;

  /** Checks the backend is reachable (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The metadata backend failed or is unreachable; maps to 503 UNAVAILABLE. */
export class MetadataUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MetadataUnavailableError';
  }
}
