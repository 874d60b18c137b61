import { statfsSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { StorageFullError } from '../blob/types.js';
import {
  MetadataUnavailableError,
  type BlobLink,
  type CheckedBlobLink,
  type Digest,
  type ManifestRecord,
  type MetadataStore,
  type Page,
  type PutManifestResult,
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
}

/*
 * Layout: one lmdb environment, one sub-database per kind, binary keys made of NUL-separated parts
 * (repository names, tags, digests and upload ids never contain NUL). lmdb orders keys bytewise, so a
 * range over `repo\0` yields that repository's entries in byte order, which is the order the API lists.
 *
 *   tags        repo \0 tag              → digest
 *   tagsOf      repo \0 digest \0 tag    → true   (which tags point at a manifest, for delete)
 *   tagLists    repo                    → string[] (the repository's tags in byte order, so a listing is
 *                                          one read instead of a key walk: 1,000 tags cost ~1 ms walked)
 *   manifests   repo \0 digest           → ManifestRecord  (presence = linked in repo)
 *   referrers   repo \0 subject \0 digest → true
 *   blobs       repo \0 digest           → size
 *   blobRepos   digest \0 repo           → true   (automatic mounts)
 *   repos       repo                     → true   (catalog; never removed)
 *   uploads     id                       → UploadSession
 *   uploadAge   updatedAt(6 bytes BE) id → true   (expiry sweep)
 *   missing     digest                  → ms since epoch (storage found not to hold the bytes)
 *   leases      name                    → { holder, until }
 */
const SEP = '\0';

function key(...parts: string[]): Buffer {
  return Buffer.from(parts.join(SEP), 'utf8');
}

/** Range bounds covering every key that starts with `parts` followed by a separator. */
function under(...parts: string[]): { start: Buffer; end: Buffer } {
  const base = parts.join(SEP);
  return { start: Buffer.from(base + SEP, 'utf8'), end: Buffer.from(base + '\x01', 'utf8') };
}

/** The first key strictly after `parts… last` within the same prefix (no key continues past a last part). */
function after(...parts: string[]): Buffer {
  return Buffer.from(parts.join(SEP) + SEP, 'utf8');
}

function ageKey(updatedAt: number, id: string): Buffer {
  const buf = Buffer.alloc(6 + Buffer.byteLength(id));
  buf.writeUIntBE(Math.max(0, Math.min(updatedAt, 2 ** 48 - 1)), 0, 6);
  buf.write(id, 6, 'utf8');
  return buf;
}

function lastPart(k: Buffer, prefixBytes: number): string {
  return k.subarray(prefixBytes).toString('utf8');
}

type Db<V> = Database<V, Buffer>;

/** lmdb's error codes for "no room": ENOSPC, EDQUOT, MDB_MAP_FULL (the map size limit). */
const FULL_CODES: Record<number, string> = { 28: 'ENOSPC', 122: 'EDQUOT', [-30792]: 'MDB_MAP_FULL' };

function outOfSpace(err: unknown, path: string): StorageFullError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  const name = typeof code === 'number' ? FULL_CODES[code] : undefined;
  if (name === undefined) return undefined;
  return new StorageFullError(`the embedded metadata store at ${path} is out of space (${name})`, { cause: err });
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Index of the first entry of the byte-ordered `list` that sorts after `value`. */
function firstAfter(list: string[], value: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (byteCompare(list[mid] as string, value) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class EmbeddedStore implements MetadataStore {
  readonly name = 'embedded';
  private readonly root: RootDatabase<unknown, Buffer>;
  private readonly tags: Db<Digest>;
  private readonly tagsOf: Db<true>;
  private readonly tagLists: Db<string[]>;
  private readonly manifests: Db<ManifestRecord>;
  private readonly referrers: Db<true>;
  private readonly blobs: Db<number>;
  private readonly blobRepos: Db<true>;
  private readonly repos: Db<true>;
  private readonly uploads: Db<UploadSession>;
  private readonly uploadAge: Db<true>;
  private readonly missing: Db<number>;
  private readonly leases: Db<{ holder: string; until: number }>;
  private readonly flush: boolean;
  private readonly path: string;
  private readonly minFreeBytes: number;
  private closed = false;

  constructor(options: EmbeddedStoreOptions) {
    this.flush = options.durability === 'flush';
    this.path = options.path;
    this.minFreeBytes = options.minFreeBytes ?? 1024 * 1024;
    try {
      this.root = open<unknown, Buffer>({ path: options.path, maxDbs: 16, keyEncoding: 'binary', encoding: 'json' });
      const sub = <V>(name: string): Db<V> => this.root.openDB<V, Buffer>({ name, keyEncoding: 'binary', encoding: 'json' });
      this.tags = sub('tags');
      this.tagsOf = sub('tagsOf');
      this.tagLists = sub('tagLists');
      this.manifests = sub('manifests');
      this.referrers = sub('referrers');
      this.blobs = sub('blobs');
      this.blobRepos = sub('blobRepos');
      this.repos = sub('repos');
      this.uploads = sub('uploads');
      this.uploadAge = sub('uploadAge');
      this.missing = sub('missing');
      this.leases = sub('leases');
    } catch (err) {
      throw new MetadataUnavailableError(`cannot open the embedded metadata store at ${options.path}`, { cause: err });
    }
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
      // On disk when this returns, before any 201: a synchronous commit fdatasyncs the data file and
      // writes the meta page through an O_DSYNC descriptor (checked with strace, lmdb 3.5), unlike the
      // batched async writes, whose `committed` promise comes before `flushed`.
      return Promise.resolve(this.root.transactionSync(action));
    } catch (err) {
      if (err instanceof MetadataUnavailableError || err instanceof StorageFullError) return Promise.reject(err);
      const full = outOfSpace(err, this.path);
      if (full) return Promise.reject(full);
      return Promise.reject(new MetadataUnavailableError(`embedded metadata store: ${what} failed`, { cause: err }));
    }
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

  putManifest(repo: string, manifest: ManifestRecord, tags: string[]): Promise<PutManifestResult> {
    return this.write('putManifest', () => {
      const { digest } = manifest;
      this.manifests.put(key(repo, digest), manifest);
      if (manifest.subject !== undefined) this.referrers.put(key(repo, manifest.subject, digest), true);
      const previous = new Map<string, Digest | undefined>();
      for (const tag of tags) {
        const old = this.tags.get(key(repo, tag));
        if (!previous.has(tag)) previous.set(tag, old);
        if (old !== undefined && old !== digest) this.tagsOf.remove(key(repo, old, tag));
        this.tags.put(key(repo, tag), digest);
        this.tagsOf.put(key(repo, digest, tag), true);
      }
      if (tags.length > 0) this.changeTagList(repo, tags, []);
      this.repos.put(key(repo), true);
      return { previousTags: Object.fromEntries(previous) };
    });
  }

  getManifest(repo: string, digest: Digest): Promise<ManifestRecord | undefined> {
    return this.read('getManifest', () => this.manifests.get(key(repo, digest)));
  }

  /** A tag's manifest record (resolveTag + getManifest in one read). */
  getTaggedManifest(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    return this.read('getTaggedManifest', () => {
      const digest = this.tags.get(key(repo, tag));
      return digest === undefined ? undefined : this.manifests.get(key(repo, digest));
    });
  }

  deleteManifest(repo: string, digest: Digest): Promise<string[] | undefined> {
    return this.write('deleteManifest', () => {
      const record = this.manifests.get(key(repo, digest));
      if (record === undefined) return undefined;
      this.manifests.remove(key(repo, digest));
      if (record.subject !== undefined) this.referrers.remove(key(repo, record.subject, digest));
      const prefix = under(repo, digest);
      const dropped: string[] = [];
      for (const k of this.tagsOf.getKeys(prefix)) {
        const tag = lastPart(k, prefix.start.length);
        dropped.push(tag);
        this.tagsOf.remove(k);
        this.tags.remove(key(repo, tag));
      }
      if (dropped.length > 0) this.changeTagList(repo, [], dropped);
      return dropped;
    });
  }

  resolveTag(repo: string, tag: string): Promise<Digest | undefined> {
    return this.read('resolveTag', () => this.tags.get(key(repo, tag)));
  }

  deleteTag(repo: string, tag: string): Promise<boolean> {
    return this.write('deleteTag', () => {
      const digest = this.tags.get(key(repo, tag));
      if (digest === undefined) return false;
      this.tags.remove(key(repo, tag));
      this.tagsOf.remove(key(repo, digest, tag));
      this.changeTagList(repo, [], [tag]);
      return true;
    });
  }

  listTags(repo: string, page: Page): Promise<string[]> {
    return this.read('listTags', () => {
      if (page.n === 0) return [];
      const list = this.tagListOf(repo);
      const from = page.last === undefined ? 0 : firstAfter(list, page.last);
      return list.slice(from, page.n === undefined ? undefined : from + page.n);
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

  linkBlob(repo: string, link: BlobLink): Promise<void> {
    return this.write('linkBlob', () => {
      this.blobs.put(key(repo, link.digest), link.size);
      this.blobRepos.put(key(link.digest, repo), true);
      this.repos.put(key(repo), true);
    });
  }

  getBlobLink(repo: string, digest: Digest): Promise<BlobLink | undefined> {
    return this.read('getBlobLink', () => {
      const size = this.blobs.get(key(repo, digest));
      return size === undefined ? undefined : { digest, size };
    });
  }

  unlinkBlob(repo: string, digest: Digest): Promise<boolean> {
    return this.write('unlinkBlob', () => {
      if (this.blobs.get(key(repo, digest)) === undefined) return false;
      this.blobs.remove(key(repo, digest));
      this.blobRepos.remove(key(digest, repo));
      return true;
    });
  }

  getCheckedBlobLink(repo: string, digest: Digest): Promise<CheckedBlobLink | undefined> {
    return this.read('getCheckedBlobLink', () => {
      const size = this.blobs.get(key(repo, digest));
      return size === undefined ? undefined : { digest, size, missing: this.missing.get(key(digest)) !== undefined };
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
    return this.read('blobRepositories', () => this.listUnder(this.blobRepos, [digest], { n: limit }));
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
    await this.root.close();
  }

  /** Last parts of the keys under `parts`, in byte order, after `page.last`, at most `page.n`. */
  /** The repository's sorted tag list; built from the tag keys for stores written before it existed. */
  private tagListOf(repo: string): string[] {
    return this.tagLists.get(key(repo)) ?? Array.from(this.tags.getKeys(under(repo)), (k) => lastPart(k, under(repo).start.length));
  }

  /** Inside a write transaction: keeps the sorted tag list in step with the tag keys. */
  private changeTagList(repo: string, added: string[], removed: string[]): void {
    const list = this.tagListOf(repo);
    for (const tag of removed) {
      const i = firstAfter(list, tag) - 1;
      if (i >= 0 && list[i] === tag) list.splice(i, 1);
    }
    for (const tag of added) {
      const i = firstAfter(list, tag);
      if (list[i - 1] !== tag) list.splice(i, 0, tag);
    }
    if (list.length === 0) this.tagLists.remove(key(repo));
    else this.tagLists.put(key(repo), list);
  }

  private listUnder(db: Db<unknown>, parts: string[], page: Page): string[] {
    if (page.n === 0) return [];
    const prefix = under(...parts);
    const start = page.last === undefined ? prefix.start : after(...parts, page.last);
    const keys = db.getKeys({ start, end: prefix.end, ...(page.n === undefined ? {} : { limit: page.n }) });
    return Array.from(keys, (k) => lastPart(k, prefix.start.length));
  }
}
