// Blob driver on a local directory, crash-safe through temporary files, fsync and rename.
// In-progress writers are synced once, at commit; see FilesystemWriter.close.
//
// Layout under `root` (`@` is outside the key alphabet, so no key can reach these names and list()
// skips them):
//   <root>/<key>                          committed object
//   <root>/@inprogress/<key>/@data        in-progress writer data (append-only until commit)
//   <root>/@tmp/<random>.<key with + for />  put() temporaries, renamed into place once synced
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, createWriteStream, type Dirent } from 'node:fs';
import { access, mkdir, open, opendir, readdir, readFile, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { addAbortSignal, Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BlobDriverError,
  BlobNotFoundError,
  InProgressLostError,
  InvalidKeyError,
  StorageFullError,
  StorageUnavailableError,
  type BlobDriver,
  type BlobInfo,
  type BlobSender,
  type BlobWriter,
  type DeleteManyResult,
  type SendCheck,
  type PutOptions,
  type ReadOptions,
  type WriterCheckpoint,
  type WriterOptions,
} from './types.js';
import { checkRange, type ByteRange } from './byte-range.js';
import { combineSignals } from './signals.js';
import { deleteEach } from './delete-each.js';
import { keeps } from './put-keep.js';
import { SyncCoalescer } from './sync-coalescer.js';
import { IO_BUFFER, IoBufferPool, SMALL_IO_BUFFER } from './io-buffers.js';
import { sendThroughBuffers } from './write-chunk.js';

export interface FilesystemDriverOptions {
  /** Directory holding every object; created on first write. */
  root: string;
  /** Memory all blob senders of the driver may hold in 1 MiB buffers at once; default 16 MiB. */
  sendBufferBytes?: number;
}

export const DEFAULT_SEND_BUFFER_BYTES = 16 * IO_BUFFER;
const IN_PROGRESS = '@inprogress';
const TMP = '@tmp';
const DATA = '@data';
const NAME = /^[A-Za-z0-9._-]+$/;
/**
 * An in-progress file is synced by close() when it crossed a multiple of this since its writer
 * opened, not only at commit: the dirty pages of a large upload stay bounded, so the disk writes them
 * back while the next chunks arrive, instead of one commit (and every lmdb commit queued behind it on
 * the disk) waiting for half a gigabyte at once.
 */
const SYNC_EVERY = 16 * 1024 * 1024;
/** Unlinks in flight at once in deleteMany(): enough to overlap disk latency, few enough for any descriptor limit. */
const DELETE_CONCURRENCY = 16;

export class FilesystemDriver implements BlobDriver {
  readonly name = 'filesystem';
  readonly root: string;
  private readonly rootPrefix: string;
  /**
   * Directory fsyncs are group-committed: concurrent writers into one directory (journal records of
   * one repository, a manifest pushed by many at once) share a sync that started after their renames.
   */
  private readonly dirSyncs = new SyncCoalescer(syncDir);
  /** The senders' read buffers, shared so that many GETs at once do not each hold 2 MiB. */
  readonly sendBuffers: IoBufferPool;

  constructor(options: FilesystemDriverOptions) {
    this.root = resolve(options.root);
    this.sendBuffers = new IoBufferPool(IO_BUFFER, options.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES, SMALL_IO_BUFFER);
    this.rootPrefix = this.root.endsWith(sep) ? this.root : this.root + sep;
  }

  async stat(key: string): Promise<BlobInfo> {
    const path = this.pathOf(key);
    const info = await stat(path).catch((err: unknown) => rethrow(err, key));
    if (!info.isFile()) throw new BlobNotFoundError(key);
    return { key, size: info.size, modifiedAt: info.mtime };
  }

  /** Opens the object and checks the range against it; the handle is closed again on any failure. */
  private async openRange(key: string, options: ReadOptions): Promise<{ handle: FileHandle; range: ByteRange; size: number }> {
    // Open first and stat the handle, so a concurrent delete or overwrite cannot split the two.
    const handle = await open(this.pathOf(key), 'r').catch((err: unknown) => rethrow(err, key));
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new BlobNotFoundError(key);
      return { handle, range: checkRange(key, info.size, options), size: info.size };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async reader(key: string, options: ReadOptions = {}): Promise<Readable> {
    options.signal?.throwIfAborted();
    const { handle, range } = await this.openRange(key, options);
    if (range.length === 0) {
      await handle.close();
      return Readable.from([], { objectMode: false });
    }
    const stream = handle.createReadStream({
      start: range.start,
      end: range.start + range.length - 1,
      highWaterMark: IO_BUFFER,
    });
    if (options.signal) addAbortSignal(options.signal, stream);
    return stream;
  }

  /**
   * Sends from two reused buffers, reading the next while the socket writes the last: a read stream
   * allocates a fresh 1 MiB buffer per read, and that garbage cost pulls a third of their speed. The
   * buffers come from the driver's pool (bounded by bytes) and go back to it once the last write is done.
   */
  async openSender(key: string, options: ReadOptions = {}): Promise<BlobSender> {
    const { handle, range, size } = await this.openRange(key, options);
    const pool = this.sendBuffers;
    return {
      size,
      async sendTo(dest: Writable, signal?: AbortSignal, check?: SendCheck): Promise<void> {
        await pool.withSendBuffers(range.length, (buffers) =>
          sendThroughBuffers({
            key,
            buffers,
            start: range.start,
            length: range.length,
            dest,
            signal,
            check,
            read: async (buffer, want, position) => (await handle.read(buffer, 0, want, position)).bytesRead,
          }),
        );
      },
      close: () => handle.close(),
    };
  }

  async put(key: string, data: Buffer, options: PutOptions = {}): Promise<void> {
    const path = this.pathOf(key);
    if (options.keep !== undefined && (await holds(path, data, options))) {
      // The object's data was synced before its rename, but a put() that renamed it may still be
      // waiting for its directory sync: one started now covers that entry too.
      await this.syncDir(dirname(path));
      return;
    }
    const tmpDir = join(this.root, TMP);
    await mkdir(tmpDir, { recursive: true }).catch((err: unknown) => {
      throw outOfSpace(err, this.root) ?? err;
    });
    const tmp = join(tmpDir, `${randomBytes(8).toString('hex')}.${key.replaceAll('/', '+')}`.slice(0, 200));
    try {
      const handle = await open(tmp, 'wx');
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await mkdir(dirname(path), { recursive: true });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      if (isCode(err, 'ENAMETOOLONG')) throw new InvalidKeyError(key);
      throw outOfSpace(err, this.root) ?? err;
    }
    await this.syncDir(dirname(path));
  }

  async get(key: string): Promise<Buffer> {
    const path = this.pathOf(key);
    return readFile(path).catch((err: unknown) => rethrow(err, key));
  }

  async writer(key: string, options: WriterOptions): Promise<BlobWriter> {
    options.signal?.throwIfAborted();
    const dir = this.inProgressDir(key);
    const data = join(dir, DATA);
    const resume = options.resume;
    if (resume && resume.size > 0) {
      // The checkpoint's bytes must still be there; a missing file (swept, deleted) is not a fresh start.
      const held = await stat(data).then(
        (info) => info.size,
        (err: unknown) => {
          if (isCode(err, 'ENOENT', 'ENOTDIR')) return undefined;
          throw err;
        },
      );
      if (held === undefined) throw new InProgressLostError(key, `holds none of the ${resume.size} bytes its checkpoint records`);
      // A file that is there but shorter lost its unsynced tail in an OS crash (close() does not
      // fsync). Appends reach the disk in order on the filesystems this runs on (ext4 data=ordered,
      // XFS, btrfs, ZFS: the size grows only once the data is written), so what is left is a prefix.
      if (held < resume.size) throw new InProgressLostError(key, `holds ${held} of the ${resume.size} bytes its checkpoint records`, held);
    }
    await mkdir(dir, { recursive: true }).catch((err: unknown) => rethrow(err, key, this.root));
    // O_APPEND: every write lands at the end of what the checkpoint (or nothing) left there.
    const handle = await open(data, 'a').catch((err: unknown) => rethrow(err, key, this.root));
    try {
      const size = resume?.size ?? 0;
      // Bytes past the checkpoint come from a write that was cut short and never acknowledged.
      // Nothing is synced here: commit() syncs the data and the directory it is renamed into.
      if ((await handle.stat()).size !== size) await handle.truncate(size);
      return new FilesystemWriter(this, key, data, handle, size, options.signal);
    } catch (err) {
      await handle.close();
      rethrow(err, key, this.root);
    }
  }

  async inProgressSize(key: string): Promise<number | undefined> {
    return stat(join(this.inProgressDir(key), DATA)).then(
      (info) => info.size,
      (err: unknown) => {
        if (isCode(err, 'ENOENT', 'ENOTDIR')) return undefined;
        throw err;
      },
    );
  }

  async move(from: string, to: string): Promise<void> {
    const source = this.pathOf(from);
    const target = this.pathOf(to);
    const info = await stat(source).catch((err: unknown) => rethrow(err, from));
    if (!info.isFile()) throw new BlobNotFoundError(from);
    if (source === target) return;
    await mkdir(dirname(target), { recursive: true }).catch((err: unknown) => rethrow(err, to, this.root));
    await rename(source, target).catch((err: unknown) => rethrow(err, from, this.root));
    await this.syncDir(dirname(target));
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    await rm(path, { recursive: true, force: true });
    await rm(this.inProgressDir(key), { recursive: true, force: true });
  }

  /**
   * Unlinks each committed object. Directories are left in place, as delete() leaves the parents of a
   * key: removing one could race a put() or commit() that has just created it.
   */
  async deleteMany(keys: string[]): Promise<DeleteManyResult> {
    return deleteEach(keys, DELETE_CONCURRENCY, async (key) => {
      try {
        await unlink(this.pathOf(key));
      } catch (err) {
        // Nothing there, or a directory (a prefix of other objects, not an object): no object at the key.
        // ENAMETOOLONG: the key cannot name a file here, so no object was ever stored under it.
        if (!isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG')) throw err;
      }
    });
  }

  async *list(prefix: string): AsyncIterable<string> {
    yield* walk(this.pathOf(prefix), prefix);
  }

  async ping(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
      await access(this.root, fsConstants.R_OK | fsConstants.W_OK);
    } catch (err) {
      throw new StorageUnavailableError(`storage root ${this.root} is not writable`, { cause: err });
    }
  }

  async close(): Promise<void> {}

  /**
   * Crash and abandonment leftovers: removes in-progress objects not written to since `olderThan`
   * that nothing owns any more, and put() temporaries a killed process left in <root>/@tmp (younger
   * ones may belong to a put() running elsewhere right now). Returns how many files were removed.
   */
  async sweep(olderThan: Date, isLive: (key: string) => Promise<boolean>): Promise<number> {
    const cutoff = olderThan.getTime();
    let removed = 0;
    for (const path of await filesBelow(join(this.root, TMP))) {
      if (await removeIfOlder(path, cutoff)) removed++;
    }
    const inProgressRoot = join(this.root, IN_PROGRESS);
    for (const path of await filesBelow(inProgressRoot)) {
      if (basename(path) !== DATA) continue;
      const key = relative(inProgressRoot, dirname(path)).split(sep).join('/');
      if (await isLive(key)) continue;
      if (!(await removeIfOlder(path, cutoff))) continue;
      removed++;
      await removeEmptyDir(dirname(path));
    }
    return removed;
  }

  /** @internal Makes the entries of `dir` durable, sharing the sync with concurrent callers. */
  syncDir(dir: string): Promise<void> {
    return this.dirSyncs.sync(dir);
  }

  /** @internal The file a committed writer's data is renamed to. */
  committedPath(key: string): string {
    return this.pathOf(key);
  }

  /** @internal */
  inProgressDir(key: string): string {
    return contained(join(this.root, IN_PROGRESS, ...key.split('/')), join(this.root, IN_PROGRESS) + sep, key);
  }

  private pathOf(key: string): string {
    return contained(join(this.root, ...key.split('/')), this.rootPrefix, key);
  }
}

/**
 * The key grammar is checked once, by `instrument` (every driver runs behind it); this only keeps a
 * driver used bare from ever touching a file outside its directory.
 */
function contained(path: string, prefix: string, key: string): string {
  if (!path.startsWith(prefix)) throw new InvalidKeyError(key);
  return path;
}

class FilesystemWriter implements BlobWriter {
  private handle: FileHandle | undefined;
  private finished = false;
  /** The write under way: close() waits for it to settle, as its caller may give up on it sooner. */
  private writing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly driver: FilesystemDriver,
    private readonly key: string,
    private readonly data: string,
    handle: FileHandle,
    private bytes: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.handle = handle;
    this.opened = bytes;
  }

  /** Where this writer started: what an earlier writer's close() may have left unsynced begins after it. */
  private readonly opened: number;

  get size(): number {
    return this.bytes;
  }

  write(src: Readable, signal?: AbortSignal): Promise<number> {
    const written = this.append(src, signal);
    this.writing = written.catch(() => undefined);
    return written;
  }

  private async append(src: Readable, signal?: AbortSignal): Promise<number> {
    const handle = this.openHandle();
    const before = this.bytes;
    // A stream with its own descriptor: destroying it on abort must not close `handle`, which stays
    // open for stat() and for the fsync in close()/commit() (fsync covers every descriptor's writes).
    const sink = createWriteStream(this.data, { flags: 'a', highWaterMark: IO_BUFFER });
    const combined = combineSignals(this.signal, signal);
    let full: StorageFullError | undefined;
    // Registered before pipeline()'s own listener: the source is destroyed with the typed error, so
    // whoever feeds it (a request body piped through a hash) fails with it too, not with raw ENOSPC.
    sink.once('error', (err) => {
      full = outOfSpace(err, this.driver.root);
      if (full) src.destroy(full);
    });
    try {
      await (combined ? pipeline(src, sink, { signal: combined }) : pipeline(src, sink));
    } catch (err) {
      throw full ?? err;
    } finally {
      // After an abort a write may still be in flight; the size is final once the stream closed.
      if (!sink.closed) await new Promise<void>((done) => sink.once('close', () => done()));
      // Out of space, a write usually lands part of its last buffer: give those bytes back at once,
      // so this failure does not keep every other push failing until the upload expires.
      if (full) await handle.truncate(before);
      this.bytes = (await handle.stat()).size;
    }
    return this.bytes - before;
  }

  /**
   * Mostly no fsync: a chunk's bytes are in the page cache, which every process on this host (and,
   * through close-to-open consistency, an NFS client) sees. The fsync at commit() covers the whole
   * object, instead of one per PATCH that serialises the disk's write-back with receiving the next
   * chunk; only every SYNC_EVERY bytes does a close() sync too.
   */
  async close(): Promise<WriterCheckpoint> {
    // The size is final, and the handle free to close, once the last write has seen its stream close.
    await this.writing;
    const handle = this.handle;
    this.handle = undefined;
    if (!handle) return { size: this.bytes };
    try {
      if (Math.floor(this.bytes / SYNC_EVERY) > Math.floor(this.opened / SYNC_EVERY)) {
        await handle.sync().catch((err: unknown) => rethrow(err, this.key, this.driver.root));
      }
    } finally {
      await handle.close();
    }
    return { size: this.bytes };
  }

  async commit(): Promise<void> {
    await this.writing;
    const handle = this.openHandle();
    this.handle = undefined;
    try {
      // Every write of this object, by any earlier writer too, is on disk before the rename makes it
      // visible. Filesystems that allocate late (ext4, XFS) may only find out here that space ran out.
      await handle.sync().catch((err: unknown) => rethrow(err, this.key, this.driver.root));
    } finally {
      await handle.close();
    }
    this.finished = true;
    const target = this.driver.committedPath(this.key);
    await mkdir(dirname(target), { recursive: true }).catch((err: unknown) => rethrow(err, this.key, this.driver.root));
    await rename(this.data, target).catch((err: unknown) => rethrow(err, this.key, this.driver.root));
    await this.driver.syncDir(dirname(target));
    await removeEmptyDir(this.driver.inProgressDir(this.key));
  }

  async cancel(): Promise<void> {
    await this.writing;
    const handle = this.handle;
    this.handle = undefined;
    this.finished = true;
    await handle?.close();
    await rm(this.data, { force: true });
    await removeEmptyDir(this.driver.inProgressDir(this.key));
  }

  private openHandle(): FileHandle {
    if (this.finished || !this.handle) throw new BlobDriverError(`writer for ${this.key} is already closed`);
    return this.handle;
  }
}

async function* walk(dir: string, prefix: string): AsyncGenerator<string> {
  let entries: AsyncIterable<Dirent>;
  try {
    entries = await opendir(dir, { bufferSize: 256 });
  } catch (err) {
    // A missing prefix, a prefix that is an object, or a directory deleted while walking: nothing here.
    if (isCode(err, 'ENOENT', 'ENOTDIR')) return;
    throw err;
  }
  for await (const entry of entries) {
    if (!NAME.test(entry.name)) continue;
    const key = `${prefix}/${entry.name}`;
    if (entry.isDirectory()) yield* walk(join(dir, entry.name), key);
    else if (entry.isFile()) yield key;
  }
}

/** Makes a rename or new entry in `dir` durable. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory; the rename itself has happened.
    if (!isCode(err, 'EINVAL', 'ENOTSUP', 'EISDIR')) throw err;
  } finally {
    await handle.close();
  }
}

/** Whether the file at `path` already holds `data` by put()'s `keep` rule; a missing file does not. */
async function holds(path: string, data: Buffer, options: PutOptions): Promise<boolean> {
  try {
    if (options.keep === 'same-size') {
      const info = await stat(path);
      return info.isFile() && info.size === data.length;
    }
    return keeps(options, await readFile(path), data);
  } catch (err) {
    if (isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG')) return false;
    throw err;
  }
}

async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((err: unknown) => {
    if (isCode(err, 'ENOENT')) return [];
    throw err;
  });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

async function removeIfOlder(path: string, cutoff: number): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  if (!info || info.mtimeMs >= cutoff) return false;
  await rm(path, { force: true });
  return true;
}

async function removeEmptyDir(dir: string): Promise<void> {
  // Another writer may have in-progress objects below this one: then the directory stays.
  await rmdir(dir).catch((err: unknown) => {
    if (!isCode(err, 'ENOENT', 'ENOTEMPTY', 'EEXIST')) throw err;
  });
}

/** Maps filesystem errors that mean "no such object" (or, writing under `root`, "no space") to typed errors. */
function rethrow(err: unknown, key: string, root?: string): never {
  if (isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw new BlobNotFoundError(key);
  if (isCode(err, 'ENAMETOOLONG')) throw new InvalidKeyError(key);
  throw (root === undefined ? undefined : outOfSpace(err, root)) ?? err;
}

/** ENOSPC (disk full) and EDQUOT (quota) as a StorageFullError naming the storage root. */
function outOfSpace(err: unknown, root: string): StorageFullError | undefined {
  if (!isCode(err, 'ENOSPC', 'EDQUOT')) return undefined;
  const code = (err as NodeJS.ErrnoException).code as string;
  const what = code === 'EDQUOT' ? 'over its disk quota' : 'out of space';
  return new StorageFullError(`filesystem storage at ${root} is ${what} (${code})`, { cause: err });
}

function isCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof Error && codes.includes((err as NodeJS.ErrnoException).code ?? '');
}
