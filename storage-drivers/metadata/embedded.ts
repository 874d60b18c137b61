import { statfsSync } from 'node:fs';
import { open, type RootDatabase } from 'lmdb';
import { after, ageKey, key, lastPart, SEP, under, type Db } from './embedded-keys.js';
import { SegmentedTagList } from './embedded-tag-list.js';
import { StorageFullError } from '../blob/types.js';
import { EmbeddedRetention } from './embedded-retention.js';
import { distinctReferences, EmbeddedGc, type EmbeddedGcDbs } from './embedded-gc.js';
import { EmbeddedPulls, type EmbeddedPullsDbs } from './embedded-pulls.js';
import { EmbeddedQuotas } from './embedded-quotas.js';
import { EmbeddedEvents } from './embedded-events.js';
import { EmbeddedReplication } from './embedded-replication.js';
import { blobLinkedDraft, blobUnlinkedDraft, eventLogMaxLength, manifestDeletedDraft, manifestPutDraft, tagDeletedDraft } from './event-records.js';
import type { EventOrigin } from './event-types.js';
import {
  MetadataUnavailableError,
  type BlobLink,
  type CheckedBlobLink,
  type Digest,
  type ManifestRecord,
  type MetadataStore,
  type Page,
  ImmutableTagError,
  MissingReferencesError,
  TagsChangedError,
  type TagDetail,
  type PutManifestResult,
  type DeleteManifestOptions,
  type DeleteTagOptions,
  type LinkBlobOptions,
  type PutManifestOptions,
  type UnlinkBlobOptions,
  type UploadSession,
} from './types.js';

export interface EmbeddedStoreOptions {
  /** Directory holding the lmdb environment (created if missing). */
  path: string;
  /**
   * Writes are refused as out of space (ENOSPC) while the volume has less than this free (default
   * 1 MiB): lmdb aborts the whole process when a page write itself hits ENOSPC (a native double free
   * in its error path, lmdb 3.5), so it must never get that far.
   */
  minFreeBytes?: number;
  /**
   * 'commit' (default): a write resolves once committed; it survives the process being killed, and lmdb
   * falls back to the last flushed transaction after an OS crash or power loss.
   * 'flush': a write also waits for the OS to report it on disk (power-loss safe, slower).
   */
  durability?: 'commit' | 'flush';
  /** The event log keeps at most this many records, dropping the oldest (default 100000). */
  eventLogMaxLength?: number;
  /** Tags per segment of a repository's stored tag list before it is split (default 1024; small in tests). */
  tagListSegment?: number;
}

/*
 * Layout: one lmdb environment, one sub-database per kind, binary keys made of NUL-separated parts
 * (repository names, tags, digests and upload ids never contain NUL). lmdb orders keys bytewise, so a
 * range over `repo\0` yields that repository's entries in byte order, which is the order the API lists.
 *
 *   tags        repo \0 tag              → digest
 *   tagsOf      repo \0 digest \0 tag    → true   (which tags point at a manifest, for delete)
 *   tagTimes    repo \0 tag              → ms since epoch the tag was last pushed
 *   tagLists    repo \0 first            → string[] (the repository's tags in byte order, in segments, so a
 *                                          listing is a few reads instead of a key walk: embedded-tag-list.ts)
 *   manifests   repo \0 digest           → ManifestRecord  (presence = linked in repo)
 *   referrers   repo \0 subject \0 digest → true
 *   blobs       repo \0 digest           → size
 *   blobRepos   digest \0 repo           → true   (automatic mounts)
 *   repos       repo                     → true   (catalog; never removed)
 *   uploads     id                       → UploadSession
 *   uploadAge   updatedAt(6 bytes BE) id → true   (expiry sweep)
 *   missing     digest                  → ms since epoch (storage found not to hold the bytes)
 *   leases      name                    → { holder, until }
 *   retention   'state'                 → the retention runner's state (embedded-retention.ts)
 * and garbage collection's records, listed in embedded-gc.ts (blobRepos doubles as its holders), pull
 * statistics, listed in embedded-pulls.ts, the quota records, listed in embedded-quotas.ts, replication's
 * rule states and artifact records, listed in embedded-replication.ts, and the
event log with its delivery state, listed in embedded-events.ts (a change with an event origin logs its
record in its own write action).
 */

/** lmdb's error codes for "no room": ENOSPC, EDQUOT, MDB_MAP_FULL (the map size limit). */
const FULL_CODES: Record<number, string> = { 28: 'ENOSPC', 122: 'EDQUOT', [-30792]: 'MDB_MAP_FULL' };

function outOfSpace(err: unknown, path: string): StorageFullError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  const name = typeof code === 'number' ? FULL_CODES[code] : undefined;
  if (name === undefined) return undefined;
  return new StorageFullError(`the embedded metadata store at ${path} is out of space (${name})`, { cause: err });
}

interface PendingWrite {
  what: string;
  action: () => unknown;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class EmbeddedStore implements MetadataStore {
  readonly name = 'embedded';
  private readonly root: RootDatabase<unknown, Buffer>;
  private readonly tags: Db<Digest>;
  private readonly tagsOf: Db<true>;
  private readonly tagTimes: Db<number>;
  private readonly tagList: SegmentedTagList;
  private readonly manifests: Db<ManifestRecord>;
  private readonly referrers: Db<true>;
  private readonly blobs: Db<number>;
  private readonly blobRepos: Db<true>;
  private readonly repos: Db<true>;
  private readonly uploads: Db<UploadSession>;
  private readonly uploadAge: Db<true>;
  private readonly missing: Db<number>;
  private readonly leases: Db<{ holder: string; until: number }>;
  private readonly gcDbs: EmbeddedGcDbs;
  private readonly pullDbs: EmbeddedPullsDbs;
  readonly gc: EmbeddedGc;
  readonly pulls: EmbeddedPulls;
  readonly quotas: EmbeddedQuotas;
  readonly events: EmbeddedEvents;
  readonly replication: EmbeddedReplication;
  private readonly retentionDb: Db<string>;
  readonly retention: EmbeddedRetention;
  private readonly flush: boolean;
  private readonly path: string;
  private readonly minFreeBytes: number;
  private closed = false;
  private pending: PendingWrite[] = [];

  constructor(options: EmbeddedStoreOptions) {
    this.flush = options.durability === 'flush';
    this.path = options.path;
    this.minFreeBytes = options.minFreeBytes ?? 1024 * 1024;
    const maxLength = eventLogMaxLength(options.eventLogMaxLength);
    try {
      this.root = open<unknown, Buffer>({ path: options.path, maxDbs: 64, keyEncoding: 'binary', encoding: 'json' });
      const sub = <V>(name: string): Db<V> => this.root.openDB<V, Buffer>({ name, keyEncoding: 'binary', encoding: 'json' });
      this.tags = sub('tags');
      this.tagsOf = sub('tagsOf');
      this.tagTimes = sub('tagTimes');
      this.tagList = new SegmentedTagList(sub('tagLists'), this.tags, options.tagListSegment ?? 1024);
      this.manifests = sub('manifests');
      this.referrers = sub('referrers');
      this.blobs = sub('blobs');
      this.blobRepos = sub('blobRepos');
      this.repos = sub('repos');
      this.uploads = sub('uploads');
      this.uploadAge = sub('uploadAge');
      this.missing = sub('missing');
      this.leases = sub('leases');
      this.retentionDb = sub('retention');
      this.gcDbs = {
        blobRepos: this.blobRepos,
        blobs: this.blobs,
        manifests: this.manifests,
        tagsOf: this.tagsOf,
        missing: this.missing,
        repos: this.repos,
        uploads: this.uploads,
        touches: sub('touches'),
        gcState: sub('gcState'),
        pins: sub('pins'),
        refs: sub('refs'),
        untagged: sub('untagged'),
        gcQueue: sub('gcQueue'),
        gcDue: sub('gcDue'),
        meta: sub('meta'),
      };
      this.pullDbs = {
        tagsOf: this.tagsOf,
        pullTotals: sub('pullTotals'),
        pullDays: sub('pullDays'),
        pullBatches: sub('pullBatches'),
        pullBatchAge: sub('pullBatchAge'),
      };
      this.quotas = new EmbeddedQuotas({
        dbs: { quotaUsage: sub('quotaUsage'), quotaDigests: sub('quotaDigests'), quotaReserved: sub('quotaReserved') },
        write: (what, action) => this.write(what, action),
        read: (what, action) => this.read(what, action),
      });
      this.events = new EmbeddedEvents({
        dbs: { eventLog: sub('eventLog'), eventMeta: sub('eventMeta'), eventEndpoints: sub('eventEndpoints'), deadLetters: sub('deadLetters') },
        write: (what, action) => this.write(what, action),
        read: (what, action) => this.read(what, action),
        maxLength,
      });
      this.replication = new EmbeddedReplication({
        dbs: { replState: sub('replState'), replArtifacts: sub('replArtifacts') },
        write: (what, action) => this.write(what, action),
        read: (what, action) => this.read(what, action),
      });
    } catch (err) {
      throw new MetadataUnavailableError(`cannot open the embedded metadata store at ${options.path}`, { cause: err });
    }
    this.gc = new EmbeddedGc({
      dbs: this.gcDbs,
      write: (what, action) => this.write(what, action),
      read: (what, action) => this.read(what, action),
      removeManifest: (repo, digest, record, event) => {
        this.removeManifest(repo, digest, record, event);
      },
    });
    this.pulls = new EmbeddedPulls({
      dbs: this.pullDbs,
      write: (what, action) => this.write(what, action),
      read: (what, action) => this.read(what, action),
    });
    this.retention = new EmbeddedRetention({
      retention: this.retentionDb,
      untagged: this.gcDbs.untagged,
      write: (what, action) => this.write(what, action),
      read: (what, action) => this.read(what, action),
    });
  }

  /**
   * Runs `action` in one synchronous lmdb write transaction: it holds lmdb's write lock (across
   * processes too) from its first read to its commit, so read-compare-write steps are atomic. Batched
   * async transactions lost one compare-and-set in a few hundred when two processes raced.
   */
  private async write<T>(what: string, action: () => T): Promise<T> {
    const result = await this.writeSync(what, action);
    if (this.flush) await this.root.flushed;
    return result;
  }

  private writeSync<T>(what: string, action: () => T): Promise<T> {
    try {
      this.assertOpen();
      this.assertRoom();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ what, action, resolve: resolve as (value: unknown) => void, reject });
      if (this.pending.length === 1) setImmediate(() => this.commitPending());
    });
  }

  /**
   * Group commit: the writes requested in one turn of the event loop share one synchronous
   * transaction, so concurrent requests share its fsync instead of queueing one each behind lmdb's
   * write lock. Each action still runs whole, after the ones before it, under the write lock held
   * across processes, so compare-and-set steps stay atomic. An action that throws aborts the shared
   * transaction; the batch is then committed one action at a time, so only that one fails.
   * On disk when a write resolves, before any 201: a synchronous commit fdatasyncs the data file and
   * writes the meta page through an O_DSYNC descriptor (checked with strace, lmdb 3.5).
   */
  private commitPending(): void {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const results: unknown[] = [];
    try {
      this.root.transactionSync(() => {
        for (const job of batch) results.push(job.action());
      });
      batch.forEach((job, i) => job.resolve(results[i]));
      return;
    } catch (err) {
      if (batch.length === 1) {
        (batch[0] as PendingWrite).reject(this.writeError(batch[0] as PendingWrite, err));
        return;
      }
    }
    for (const job of batch) {
      try {
        job.resolve(this.root.transactionSync(job.action));
      } catch (err) {
        job.reject(this.writeError(job, err));
      }
    }
  }

  private writeError(job: PendingWrite, err: unknown): Error {
    if (err instanceof MetadataUnavailableError || err instanceof StorageFullError) return err;
    return outOfSpace(err, this.path) ?? new MetadataUnavailableError(`embedded metadata store: ${job.what} failed`, { cause: err });
  }

  private read<T>(what: string, action: () => T): Promise<T> {
    try {
      this.assertOpen();
      // lmdb-js keeps one read snapshot for every read until a setTimeout(0) resets it (or this
      // process commits). Under load that timer waits behind many I/O callbacks, so a request that
      // arrived after another process's commit could still be answered from an older snapshot. A
      // fresh snapshot per read costs ~1 µs (reader-slot renew), far below a request's cost.
      this.root.resetReadTxn();
      return Promise.resolve(action());
    } catch (err) {
      if (err instanceof MetadataUnavailableError) return Promise.reject(err);
      return Promise.reject(new MetadataUnavailableError(`embedded metadata store: ${what} failed`, { cause: err }));
    }
  }

  /** One statfs per write (microseconds beside the commit's fsync). */
  private assertRoom(): void {
    let free: number;
    try {
      const info = statfsSync(this.path);
      free = info.bavail * info.bsize;
    } catch {
      return; // statfs unsupported here: lmdb's own errors still map to out of space
    }
    if (free < this.minFreeBytes) {
      throw new StorageFullError(`the embedded metadata store at ${this.path} is out of space (ENOSPC): ${free} bytes free, ${this.minFreeBytes} needed`);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new MetadataUnavailableError('embedded metadata store is closed');
  }

  async putManifest(repo: string, manifest: ManifestRecord, tags: string[], options: PutManifestOptions = {}): Promise<PutManifestResult> {
    const { required, immutable = [], event } = options;
    // A refusal is returned, not thrown: a throw would abort the group commit it shares.
    const result = await this.write('putManifest', (): PutManifestResult | MissingReferencesError | ImmutableTagError => {
      const { digest } = manifest;
      for (const tag of immutable) {
        const current = this.tags.get(key(repo, tag));
        if (current !== undefined && current !== digest) return new ImmutableTagError(tag, current);
      }
      if (required) {
        const missing = [
          ...required.blobs.filter((d) => this.blobs.get(key(repo, d)) === undefined),
          ...required.manifests.filter((d) => this.manifests.get(key(repo, d)) === undefined),
        ];
        if (missing.length > 0) return new MissingReferencesError(missing);
      }
      const repositoryCreated = this.repos.get(key(repo)) === undefined;
      for (const held of [digest, ...manifest.references]) this.blobRepos.put(key(held, repo), true);
      // A set, not a count: a re-put, or a rebuild over data already there, adds nothing twice.
      for (const ref of distinctReferences(manifest)) this.gcDbs.refs.put(key(repo, ref, digest), true);
      this.manifests.put(key(repo, digest), manifest);
      if (manifest.subject !== undefined) this.referrers.put(key(repo, manifest.subject, digest), true);
      const previous = new Map<string, Digest | undefined>();
      for (const tag of tags) {
        const old = this.tags.get(key(repo, tag));
        if (!previous.has(tag)) previous.set(tag, old);
        if (old !== undefined && old !== digest) {
          this.tagsOf.remove(key(repo, old, tag));
          this.gcDbs.untagged.put(key(repo, old), Date.now());
        }
        this.tags.put(key(repo, tag), digest);
        this.tagsOf.put(key(repo, digest, tag), true);
        this.tagTimes.put(key(repo, tag), manifest.createdAt);
      }
      if (tags.length > 0) this.tagList.change(repo, tags, []);
      this.repos.put(key(repo), true);
      if (event !== undefined) {
        const draft = manifestPutDraft(event, repo, manifest, tags);
        this.events.logInTransaction([{ ...draft, previous: draft.tags.map((t) => previous.get(t) ?? ''), repositoryCreated }]);
      }
      return { previousTags: Object.fromEntries(previous) };
    });
    if (result instanceof Error) throw result;
    return result;
  }

  getManifest(repo: string, digest: Digest): Promise<ManifestRecord | undefined> {
    return this.read('getManifest', () => this.manifests.get(key(repo, digest)));
  }

  getManifests(repo: string, digests: Digest[]): Promise<(ManifestRecord | undefined)[]> {
    return this.read('getManifests', () => digests.map((digest) => this.manifests.get(key(repo, digest))));
  }

  /** A tag's manifest record (resolveTag + getManifest in one read). */
  getTaggedManifest(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    return this.read('getTaggedManifest', () => {
      const digest = this.tags.get(key(repo, tag));
      return digest === undefined ? undefined : this.manifests.get(key(repo, digest));
    });
  }

  async deleteManifest(repo: string, digest: Digest, options: DeleteManifestOptions = {}): Promise<string[] | undefined> {
    const { expectedTags, event } = options;
    const result = await this.write('deleteManifest', (): string[] | undefined | TagsChangedError => {
      const record = this.manifests.get(key(repo, digest));
      if (record === undefined) return undefined;
      if (expectedTags !== undefined) {
        const current = this.tagsOfManifest(repo, digest);
        if (!sameSet(current, expectedTags)) return new TagsChangedError(current);
      }
      return this.removeManifest(repo, digest, record, event);
    });
    if (result instanceof Error) throw result;
    return result;
  }

  manifestTags(repo: string, digest: Digest): Promise<string[]> {
    return this.read('manifestTags', () => this.tagsOfManifest(repo, digest));
  }

  private tagsOfManifest(repo: string, digest: Digest): string[] {
    const prefix = under(repo, digest);
    return [...this.tagsOf.getKeys(prefix)].map((k) => lastPart(k, prefix.start.length));
  }

  /**
   * Inside a write transaction: unlinks a manifest with its tags, referrer entry and reference counts;
   * with `event`, logs the manifest_deleted record.
   */
  private removeManifest(repo: string, digest: Digest, record: ManifestRecord, event: EventOrigin | undefined): string[] {
    this.manifests.remove(key(repo, digest));
    if (record.subject !== undefined) this.referrers.remove(key(repo, record.subject, digest));
    for (const ref of distinctReferences(record)) this.gcDbs.refs.remove(key(repo, ref, digest));
    this.gcDbs.untagged.remove(key(repo, digest));
    const prefix = under(repo, digest);
    const dropped: string[] = [];
    for (const k of this.tagsOf.getKeys(prefix)) {
      const tag = lastPart(k, prefix.start.length);
      dropped.push(tag);
      this.tagsOf.remove(k);
      this.tags.remove(key(repo, tag));
      this.tagTimes.remove(key(repo, tag));
    }
    if (dropped.length > 0) this.tagList.change(repo, [], dropped);
    if (event !== undefined) this.events.logInTransaction([{ ...manifestDeletedDraft(event, repo, digest), mediaType: record.mediaType, tags: dropped }]);
    return dropped;
  }

  resolveTag(repo: string, tag: string): Promise<Digest | undefined> {
    return this.read('resolveTag', () => this.tags.get(key(repo, tag)));
  }

  deleteTag(repo: string, tag: string, options: DeleteTagOptions = {}): Promise<boolean> {
    const { expected, event } = options;
    return this.write('deleteTag', () => {
      const digest = this.tags.get(key(repo, tag));
      if (digest === undefined || (expected !== undefined && digest !== expected)) return false;
      this.tags.remove(key(repo, tag));
      this.tagTimes.remove(key(repo, tag));
      this.tagsOf.remove(key(repo, digest, tag));
      this.gcDbs.untagged.put(key(repo, digest), Date.now());
      this.tagList.change(repo, [], [tag]);
      if (event !== undefined) this.events.logInTransaction([{ ...tagDeletedDraft(event, repo, tag), digest }]);
      return true;
    });
  }

  listTags(repo: string, page: Page): Promise<string[]> {
    return this.read('listTags', () => {
      if (page.n === 0) return [];
      if (page.n !== undefined) {
        // A page walks only its own keys: the stored list costs a decode of every tag (a 1,000-tag
        // page of a 100,000-tag repository: ~120 ms from the list, a few ms walked).
        const range = under(repo);
        const start = page.last === undefined ? range.start : after(repo, page.last);
        return Array.from(this.tags.getKeys({ start, end: range.end, limit: page.n }), (k) => lastPart(k, range.start.length));
      }
      return this.tagList.list(repo, page.last);
    });
  }

  listTagDetails(repo: string, page: Page): Promise<TagDetail[]> {
    return this.read('listTagDetails', () => {
      if (page.n === 0) return [];
      const range = under(repo);
      const start = page.last === undefined ? range.start : after(repo, page.last);
      const details: TagDetail[] = [];
      for (const { key: k, value: digest } of this.tags.getRange({ start, end: range.end, ...(page.n === undefined ? {} : { limit: page.n }) })) {
        const tag = lastPart(k, range.start.length);
        details.push({ tag, digest, pushedAt: this.tagTimes.get(k) ?? this.manifests.get(key(repo, digest))?.createdAt ?? 0 });
      }
      return details;
    });
  }

  listReferrers(repo: string, subject: Digest): Promise<ManifestRecord[]> {
    return this.read('listReferrers', () => {
      const prefix = under(repo, subject);
      const found: ManifestRecord[] = [];
      for (const k of this.referrers.getKeys(prefix)) {
        const record = this.manifests.get(key(repo, lastPart(k, prefix.start.length)));
        if (record !== undefined) found.push(record);
      }
      return found;
    });
  }

  linkBlob(repo: string, link: BlobLink, options: LinkBlobOptions = {}): Promise<void> {
    return this.write('linkBlob', () => {
      const repositoryCreated = this.repos.get(key(repo)) === undefined;
      this.blobs.put(key(repo, link.digest), link.size);
      this.blobRepos.put(key(link.digest, repo), true);
      this.repos.put(key(repo), true);
      if (options.event !== undefined) this.events.logInTransaction([{ ...blobLinkedDraft(options.event, repo, link, options), repositoryCreated }]);
    });
  }

  getBlobLink(repo: string, digest: Digest): Promise<BlobLink | undefined> {
    return this.read('getBlobLink', () => {
      const size = this.blobs.get(key(repo, digest));
      return size === undefined ? undefined : { digest, size };
    });
  }

  getBlobLinks(repo: string, digests: Digest[]): Promise<(BlobLink | undefined)[]> {
    return this.read('getBlobLinks', () =>
      digests.map((digest) => {
        const size = this.blobs.get(key(repo, digest));
        return size === undefined ? undefined : { digest, size };
      }),
    );
  }

  unlinkBlob(repo: string, digest: Digest, options: UnlinkBlobOptions = {}): Promise<boolean> {
    return this.write('unlinkBlob', () => {
      if (this.blobs.get(key(repo, digest)) === undefined) return false;
      this.blobs.remove(key(repo, digest));
      if (options.event !== undefined) this.events.logInTransaction([blobUnlinkedDraft(options.event, repo, digest)]);
      return true;
    });
  }

  getCheckedBlobLink(repo: string, digest: Digest): Promise<CheckedBlobLink | undefined> {
    return this.read('getCheckedBlobLink', () => {
      const size = this.blobs.get(key(repo, digest));
      if (size === undefined) return undefined;
      return { digest, size, missing: this.missing.get(key(digest)) !== undefined, deleting: this.gcDbs.gcState.get(key(digest))?.state === 'deleting' };
    });
  }

  markBlobMissing(digest: Digest): Promise<void> {
    return this.write('markBlobMissing', () => {
      this.missing.put(key(digest), Date.now());
    });
  }

  clearBlobMissing(digest: Digest): Promise<void> {
    return this.write('clearBlobMissing', () => {
      this.missing.remove(key(digest));
    });
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.write('acquireLease', () => {
      const now = Date.now();
      const current = this.leases.get(key(name));
      if (current !== undefined && current.holder !== holder && current.until > now) return false;
      this.leases.put(key(name), { holder, until: now + ttlMs });
      return true;
    });
  }

  releaseLease(name: string, holder: string): Promise<void> {
    return this.write('releaseLease', () => {
      if (this.leases.get(key(name))?.holder === holder) this.leases.remove(key(name));
    });
  }

  blobRepositories(digest: Digest, limit: number): Promise<string[]> {
    return this.read('blobRepositories', () => {
      // The holders also name repositories that hold the digest only through a manifest: keep the linked ones.
      const found: string[] = [];
      if (limit <= 0) return found;
      const prefix = under(digest);
      for (const k of this.blobRepos.getKeys(prefix)) {
        const repo = lastPart(k, prefix.start.length);
        if (this.blobs.get(key(repo, digest)) !== undefined) found.push(repo);
        if (found.length >= limit) break;
      }
      return found;
    });
  }

  repositoryExists(repo: string): Promise<boolean> {
    return this.read('repositoryExists', () => this.repos.get(key(repo)) !== undefined);
  }

  listRepositories(page: Page): Promise<string[]> {
    return this.read('listRepositories', () => {
      if (page.n === 0) return [];
      const range = {
        ...(page.last === undefined ? {} : { start: Buffer.from(page.last + SEP, 'utf8') }),
        ...(page.n === undefined ? {} : { limit: page.n }),
      };
      return Array.from(this.repos.getKeys(range), (k) => k.toString('utf8'));
    });
  }

  createUpload(session: UploadSession): Promise<void> {
    return this.write('createUpload', () => {
      const old = this.uploads.get(key(session.id));
      if (old !== undefined) this.uploadAge.remove(ageKey(old.updatedAt, old.id));
      this.uploads.put(key(session.id), session);
      this.uploadAge.put(ageKey(session.updatedAt, session.id), true);
    });
  }

  getUpload(id: string): Promise<UploadSession | undefined> {
    return this.read('getUpload', () => this.uploads.get(key(id)));
  }

  updateUpload(id: string, expectedRevision: number, next: UploadSession): Promise<boolean> {
    return this.write('updateUpload', () => {
      const current = this.uploads.get(key(id));
      if (current === undefined || current.revision !== expectedRevision) return false;
      this.uploadAge.remove(ageKey(current.updatedAt, id));
      this.uploads.put(key(id), next);
      this.uploadAge.put(ageKey(next.updatedAt, id), true);
      return true;
    });
  }

  deleteUpload(id: string): Promise<void> {
    return this.write('deleteUpload', () => {
      const current = this.uploads.get(key(id));
      if (current === undefined) return;
      this.uploads.remove(key(id));
      this.uploadAge.remove(ageKey(current.updatedAt, id));
    });
  }

  listStaleUploads(updatedBefore: number, limit: number): Promise<UploadSession[]> {
    return this.read('listStaleUploads', () => {
      const found: UploadSession[] = [];
      if (limit <= 0) return found;
      for (const k of this.uploadAge.getKeys({ end: ageKey(updatedBefore, '') })) {
        const session = this.uploads.get(key(k.subarray(6).toString('utf8')));
        if (session !== undefined && session.updatedAt < updatedBefore) found.push(session);
        if (found.length >= limit) break;
      }
      return found;
    });
  }

  ping(): Promise<void> {
    return this.read('ping', () => {
      this.repos.get(key('\x01ping'));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Writes already accepted are committed, not dropped.
    this.commitPending();
    await this.root.close();
  }
}

function sameSet(a: string[], b: string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((x) => right.has(x));
}
