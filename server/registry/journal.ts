import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import { BlobNotFoundError } from '../../storage-drivers/blob/types.js';
import type { EventMetadata } from '../../storage-drivers/metadata/event-types.js';
import type { GcMetadata, UnusedManifestRule } from '../../storage-drivers/metadata/gc-types.js';
import type { PullMetadata } from '../../storage-drivers/metadata/pull-types.js';
import type { QuotaMetadata } from '../../storage-drivers/metadata/quota-types.js';
import type { ReplicationMetadata } from '../../storage-drivers/metadata/replication-types.js';
import type { RetentionMetadata } from '../../storage-drivers/metadata/retention-types.js';
import {
  ImmutableTagError,
  MissingReferencesError,
  type BlobLink,
  type Digest,
  type ManifestRecord,
  type MetadataStore,
  type Page,
  type PutManifestResult,
  type DeleteManifestOptions,
  type DeleteTagOptions,
  type LinkBlobOptions,
  type PutManifestOptions,
  type UnlinkBlobOptions,
  type UploadSession,
} from '../../storage-drivers/metadata/types.js';
import { journalBlobKey, journalManifestKey, journalTagKey } from './keys.js';

/*
 * The metadata journal: every committed link, manifest and tag is also written as a small object in
 * blob storage (under JOURNAL_ROOT; the keys are drawn in server/registry/keys.ts), so `berth metadata
 * rebuild` can recreate the whole metadata store (Redis that lost its data, or a corrupted embedded
 * store) from storage alone.
 * Additions are journaled before the metadata commit (a crash in between leaves an extra, valid entry
 * that a rebuild restores); removals after it (a crash in between may let a rebuild restore the removed
 * entry). Either way nothing acknowledged is ever lost.
 */
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

async function ignoreMissing(p: Promise<void>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof BlobNotFoundError)) throw err;
  }
}

async function forgetManifest(driver: BlobDriver, repo: string, digest: Digest, tags: string[]): Promise<void> {
  for (const tag of tags) await ignoreMissing(driver.delete(journalTagKey(repo, tag)));
  await ignoreMissing(driver.delete(journalManifestKey(repo, digest)));
}

/**
 * The garbage collector's records pass straight through; its two removals of repository entries are
 * journaled like deleteManifest and unlinkBlob, so a rebuild does not bring back what GC took away.
 */
function journaledGc(inner: GcMetadata, driver: BlobDriver): GcMetadata {
  return Object.assign(Object.create(inner) as GcMetadata, {
    async deleteManifestIfUnused(repo: string, digest: Digest, rule: UnusedManifestRule): Promise<ManifestRecord | undefined> {
      // Tags it may drop (a tagged referrer whose subject is gone) stay journaled: a rebuild restores only
      // the tags of journaled manifests, and this one's entry goes.
      const record = await inner.deleteManifestIfUnused(repo, digest, rule);
      if (record !== undefined) await forgetManifest(driver, repo, digest, []);
      return record;
    },
    async unlinkOrphan(repo: string, digest: Digest): Promise<boolean> {
      const unlinked = await inner.unlinkOrphan(repo, digest);
      if (unlinked) await ignoreMissing(driver.delete(journalBlobKey(repo, digest)));
      return unlinked;
    },
  });
}

/** A MetadataStore that journals every committed change to blob storage before passing it on. */
export class JournaledStore implements MetadataStore {
  readonly name: string;
  readonly gc: GcMetadata;
  /** Statistics are not journaled: a rebuild restores what was pushed, not how often it was pulled. */
  readonly pulls: PullMetadata;
  /** Namespace records are recounted from the links by a rebuild, so they need no journal of their own. */
  readonly quotas: QuotaMetadata;
  readonly retention: RetentionMetadata;
  readonly replication: ReplicationMetadata;
  /** The event log is not journaled: a rebuild restores content, and events already delivered stay delivered. */
  readonly events: EventMetadata;
  constructor(
    private readonly inner: MetadataStore,
    private readonly driver: BlobDriver,
  ) {
    this.name = inner.name;
    this.gc = journaledGc(inner.gc, driver);
    this.pulls = inner.pulls;
    this.quotas = inner.quotas;
    // Retention's state is its own bookkeeping, not registry content: nothing to journal.
    this.retention = inner.retention;
    // Replication's records are its own bookkeeping too: not journaled, so a rebuilt store starts rules afresh.
    this.replication = inner.replication;
    this.events = inner.events;
  }

  async putManifest(repo: string, manifest: ManifestRecord, tags: string[], options?: PutManifestOptions): Promise<PutManifestResult> {
    const { inline: _inline, ...record } = manifest;
    // A record already journaled for this digest describes the same manifest (all of it follows from
    // the bytes but createdAt, so a rebuild restores the first push's time): kept, not written again.
    // Written side by side, so their syncs overlap; should one fail, the others are extra valid entries.
    const written = await Promise.allSettled([
      this.driver.put(journalManifestKey(repo, manifest.digest), json(record), { keep: 'same-size' }),
      ...tags.map((tag) => this.driver.put(journalTagKey(repo, tag), Buffer.from(manifest.digest), { keep: 'same-bytes' })),
    ]);
    const failed = written.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    try {
      return await this.inner.putManifest(repo, manifest, tags, options);
    } catch (err) {
      if (err instanceof MissingReferencesError || err instanceof ImmutableTagError) await this.undoRefusedPut(repo, manifest.digest, tags);
      throw err;
    }
  }

  /**
   * A refused put changed nothing: its journal entries go back to what the store holds, so a rebuild
   * neither links a manifest that never was (tags of an unlinked manifest are skipped) nor moves a tag
   * an immutable rule kept in place.
   */
  private async undoRefusedPut(repo: string, digest: Digest, tags: string[]): Promise<void> {
    for (const tag of tags) {
      const current = await this.inner.resolveTag(repo, tag);
      if (current === undefined) await ignoreMissing(this.driver.delete(journalTagKey(repo, tag)));
      else if (current !== digest) await this.driver.put(journalTagKey(repo, tag), Buffer.from(current));
    }
    if ((await this.inner.getManifest(repo, digest)) === undefined) await ignoreMissing(this.driver.delete(journalManifestKey(repo, digest)));
  }

  async deleteManifest(repo: string, digest: Digest, options?: DeleteManifestOptions): Promise<string[] | undefined> {
    const dropped = await this.inner.deleteManifest(repo, digest, options);
    if (dropped !== undefined) await forgetManifest(this.driver, repo, digest, dropped);
    return dropped;
  }

  async deleteTag(repo: string, tag: string, options?: DeleteTagOptions): Promise<boolean> {
    const deleted = await this.inner.deleteTag(repo, tag, options);
    if (deleted) await ignoreMissing(this.driver.delete(journalTagKey(repo, tag)));
    return deleted;
  }

  async linkBlob(repo: string, link: BlobLink, options?: LinkBlobOptions): Promise<void> {
    await this.driver.put(journalBlobKey(repo, link.digest), json(link), { keep: 'same-bytes' });
    await this.inner.linkBlob(repo, link, options);
  }

  async unlinkBlob(repo: string, digest: Digest, options?: UnlinkBlobOptions): Promise<boolean> {
    const unlinked = await this.inner.unlinkBlob(repo, digest, options);
    if (unlinked) await ignoreMissing(this.driver.delete(journalBlobKey(repo, digest)));
    return unlinked;
  }

  getManifest(repo: string, digest: Digest) {
    return this.inner.getManifest(repo, digest);
  }
  getManifests(repo: string, digests: Digest[]) {
    return this.inner.getManifests(repo, digests);
  }
  resolveTag(repo: string, tag: string) {
    return this.inner.resolveTag(repo, tag);
  }
  getTaggedManifest(repo: string, tag: string) {
    return this.inner.getTaggedManifest(repo, tag);
  }
  listTags(repo: string, page: Page) {
    return this.inner.listTags(repo, page);
  }
  listTagDetails(repo: string, page: Page) {
    return this.inner.listTagDetails(repo, page);
  }
  manifestTags(repo: string, digest: Digest) {
    return this.inner.manifestTags(repo, digest);
  }
  listReferrers(repo: string, subject: Digest) {
    return this.inner.listReferrers(repo, subject);
  }
  getBlobLink(repo: string, digest: Digest) {
    return this.inner.getBlobLink(repo, digest);
  }
  getBlobLinks(repo: string, digests: Digest[]) {
    return this.inner.getBlobLinks(repo, digests);
  }
  getCheckedBlobLink(repo: string, digest: Digest) {
    return this.inner.getCheckedBlobLink(repo, digest);
  }
  markBlobMissing(digest: Digest) {
    return this.inner.markBlobMissing(digest);
  }
  clearBlobMissing(digest: Digest) {
    return this.inner.clearBlobMissing(digest);
  }
  acquireLease(name: string, holder: string, ttlMs: number) {
    return this.inner.acquireLease(name, holder, ttlMs);
  }
  releaseLease(name: string, holder: string) {
    return this.inner.releaseLease(name, holder);
  }
  blobRepositories(digest: Digest, limit: number) {
    return this.inner.blobRepositories(digest, limit);
  }
  repositoryExists(repo: string) {
    return this.inner.repositoryExists(repo);
  }
  listRepositories(page: Page) {
    return this.inner.listRepositories(page);
  }
  createUpload(session: UploadSession) {
    return this.inner.createUpload(session);
  }
  getUpload(id: string) {
    return this.inner.getUpload(id);
  }
  updateUpload(id: string, expectedRevision: number, next: UploadSession) {
    return this.inner.updateUpload(id, expectedRevision, next);
  }
  deleteUpload(id: string) {
    return this.inner.deleteUpload(id);
  }
  listStaleUploads(updatedBefore: number, limit: number) {
    return this.inner.listStaleUploads(updatedBefore, limit);
  }
  ping() {
    return this.inner.ping();
  }
  close() {
    return this.inner.close();
  }
}
