import type { EventOrigin } from './event-types.js';
import type { Digest, ManifestRecord } from './types.js';

/*
 * What garbage collection keeps in the metadata store, per digest (see docs/gc.md):
 *
 *  - holders: the repositories that may hold the digest (a blob link, a manifest that references it,
 *    or the manifest itself). A superset: putManifest and linkBlob add the repository *before* their
 *    repository change, and only quarantineBlob/finishPurge remove entries, after checking each one.
 *  - version + lastTouch: every use (HEAD, GET, mount, finished upload, pin) writes a new version and
 *    the time. A GC decision reads the version first and commits only if it is unchanged, so a use in
 *    between always wins.
 *  - pins: a push about to create a hold (upload finish, mount, manifest PUT) pins the digest first.
 *    A pinned digest is never claimed; a digest being deleted cannot be pinned. Pins expire, so a
 *    crashed process cannot pin a digest forever.
 *  - state: live → quarantined (no holds; bytes kept; any use revives it) → deleting (links dropped,
 *    bytes deleted; HEAD answers 404, pins are refused) → gone.
 */

export type GcState = 'live' | 'quarantined' | 'deleting';

export interface BlobPin {
  /** Unique per request. */
  id: string;
  /** ms since epoch after which the pin no longer counts. */
  until: number;
  /** ms since epoch: the touch the pin records. */
  now: number;
}

/** One item of GC work; `due` in ms since epoch. */
export type GcWork = { kind: 'blob'; digest: Digest; due: number } | { kind: 'manifest'; repo: string; digest: Digest; due: number };

/** A queued item as taken from the queue; `token` lets completeGcWork leave a re-queued item in place. */
export type QueuedGcWork = GcWork & { token: string };

/** The result of claimBlob: either what a decision needs, or why the digest cannot be judged now. */
export type BlobClaim =
  | { ok: true; version: string; holders: string[] }
  | { ok: false; reason: 'pinned' | 'touched'; retryAt: number }
  | { ok: false; reason: 'quarantined'; since: number }
  | { ok: false; reason: 'deleting'; until: number };

/** What a repository holds of a digest. */
export interface RepositoryHold {
  /** Manifests in the repository that reference the digest (config, layer, blob, index child). */
  manifestRefs: number;
  /** The digest is a manifest linked in the repository. */
  manifest: boolean;
  /** The repository has a blob link to the digest. */
  link: boolean;
}

export interface GcStatus {
  state: GcState;
  lastTouch?: number;
  /** Quarantined or deleting since (ms since epoch). */
  since?: number;
}

/** When an untagged manifest may be collected by deleteManifestIfUnused. */
export interface UnusedManifestRule {
  /** Collect an untagged, unreferenced manifest last pushed and last untagged before this time. */
  untaggedBefore?: number;
  /** Collect a manifest whose subject is no longer in the repository (the referrers rule), tagged or not. */
  orphanReferrers: boolean;
  /** Only say whether it would be deleted (return the record) and change nothing. */
  dryRun?: boolean;
  /** Record a manifest_deleted in the event outbox in the same step (gc, retention). */
  event?: EventOrigin | undefined;
}

/**
 * The garbage collector's part of the metadata store. Every method is atomic on its own (a Lua script
 * within one Cluster slot in Redis, one transaction in the embedded store).
 */
export interface GcMetadata {
  /** Records a use of each digest (new version, lastTouch = now). Cheap, blind write. */
  touchBlobs(digests: Digest[], now: number): Promise<void>;
  /**
   * Pins each digest not being deleted (and touches it); returns the digests that are being deleted,
   * which are not pinned. A pin of a quarantined digest revives it.
   */
  pinBlobs(digests: Digest[], pin: BlobPin): Promise<Digest[]>;
  /** Removes the pins; returns the digests whose pin was no longer there (expired and cleared). */
  unpinBlobs(digests: Digest[], pinId: string): Promise<Digest[]>;
  status(digest: Digest): Promise<GcStatus>;

  /**
   * Reads what a decision about `digest` needs, atomically: refused while pinned (an unexpired pin),
   * touched at or after `touchedBefore`, quarantined or being deleted.
   */
  claimBlob(digest: Digest, touchedBefore: number, now: number): Promise<BlobClaim>;
  repositoryHolds(repo: string, digest: Digest): Promise<RepositoryHold>;
  /**
   * Quarantines a live digest, only if its version is still `version` and no pin appeared: drops
   * `released` (holders found to hold nothing) from its holders. False when something changed.
   */
  quarantineBlob(digest: Digest, version: string, released: string[], now: number): Promise<boolean>;
  /**
   * Starts deleting a digest quarantined at or before `quarantinedBefore` and not used since (or takes
   * over a deletion whose lease ran out): state deleting under `token` until `leaseUntil`. Returns its
   * holders, or undefined: not quarantined long enough, not quarantined at all, or used since — a
   * used digest is revived (state live) here.
   */
  beginPurge(digest: Digest, token: string, leaseUntil: number, quarantinedBefore: number, now: number): Promise<string[] | undefined>;
  /** In `repo`, removes the blob link to `digest` only if no manifest there references it or is it. False when held. */
  unlinkOrphan(repo: string, digest: Digest): Promise<boolean>;
  /** Ends a deletion under `token`: the digest's GC record, pins, holders and missing mark go. False when the token lost. */
  finishPurge(digest: Digest, token: string): Promise<boolean>;
  /** Gives a deletion under `token` up: the digest is live again (a holder turned up). */
  abortPurge(digest: Digest, token: string): Promise<void>;

  /**
   * Deletes the manifest if `rule` allows and nothing keeps it: no tag points at it, no manifest in
   * the repository references it. Like deleteManifest otherwise. Returns the deleted record.
   */
  deleteManifestIfUnused(repo: string, digest: Digest, rule: UnusedManifestRule): Promise<ManifestRecord | undefined>;

  /** Queues work; an item already queued gets the new due time and a new token. */
  enqueue(work: GcWork[]): Promise<void>;
  /** Up to `limit` queued items due at or before `now`, earliest first (they stay queued). */
  takeDue(now: number, limit: number): Promise<QueuedGcWork[]>;
  /** Removes the items whose token is unchanged (an item re-queued since it was taken stays). */
  complete(work: QueuedGcWork[]): Promise<void>;
  /** Items queued, and of those due at or before `now`. */
  queueSize(now: number): Promise<{ queued: number; due: number }>;

  /** Why the metadata is known complete (the marker), or undefined: GC must refuse to run. */
  completeness(): Promise<string | undefined>;
  markComplete(reason: string): Promise<void>;
  /** True when the store holds no repository and no upload (a fresh store). */
  isEmpty(): Promise<boolean>;
}

/** A hold was to be created on a digest GC is deleting (see pinBlobs). */
export class BlobDeletingError extends Error {
  constructor(readonly digests: Digest[]) {
    super(`being deleted by garbage collection: ${digests.slice(0, 5).join(', ')}`);
    this.name = 'BlobDeletingError';
  }
}
