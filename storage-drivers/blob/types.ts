import type { Readable, Writable } from 'node:stream';

/** What a driver knows about one stored object. */
export interface BlobInfo {
  key: string;
  size: number;
  modifiedAt: Date;
}

export interface ReadOptions {
  /** First byte to read (inclusive). */
  start?: number | undefined;
  /** Last byte to read (inclusive). */
  end?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** How put() treats an object already stored under the key. */
export interface PutOptions {
  /**
   * 'same-size': the key names its content (a digest), so an object of the same size already there
   * holds these bytes and is kept, not written again. 'same-bytes': kept when it holds exactly these
   * bytes (read and compared; for small records). Either way put() resolves only once the kept object
   * is as durable as a fresh write would have made it.
   */
  keep?: 'same-size' | 'same-bytes';
}

export interface WriterOptions {
  /**
   * Continue the in-progress object at `key` from this checkpoint, as an earlier `close()` returned it
   * (possibly in another process). Bytes stored past the checkpoint (a write cut short by a crash) are
   * dropped; if the object no longer holds the checkpoint's bytes the writer throws InProgressLostError.
   * Without it the writer starts a new object, discarding previous in-progress data at `key`.
   */
  resume?: WriterCheckpoint;
  signal?: AbortSignal;
}

/**
 * Where an in-progress object stands. Its owner (an upload session) keeps it and hands it back to
 * resume: the driver stores no state of its own that could disagree with the owner's.
 */
export interface WriterCheckpoint {
  /** Bytes the object holds. */
  size: number;
  /** Driver-specific state (S3: multipart upload id, parts, tail segments), opaque to the owner. */
  state?: string;
}

/**
 * A writer for an in-progress object. Data written is not visible through `stat`/`reader` at `key`
 * until `commit()`; `close()` returns the checkpoint from which a later `writer(key, { resume })` (in
 * this or another process) continues. Only `commit()` makes the bytes durable: after an OS crash or
 * power loss an in-progress object may hold fewer bytes than its last checkpoint (then resuming throws
 * InProgressLostError, with `held` where the driver knows the bytes still there are a prefix).
 */
export interface BlobWriter {
  /** Bytes written so far, across all writers of this in-progress object. */
  readonly size: number;
  /** Appends the whole stream; resolves with the number of bytes appended. */
  write(src: Readable, signal?: AbortSignal): Promise<number>;
  /**
   * Releases the writer; resume later from the returned checkpoint. The bytes are visible to a writer
   * in any process at once, but durable only where the backend makes every write so (S3), not on a
   * filesystem: there a crash of the OS may lose them, and the owner re-derives where it stands.
   */
  close(): Promise<WriterCheckpoint>;
  /**
   * Makes the written bytes durable and readable at `key`, replacing any object there (on disk before
   * it resolves). The writer is unusable afterwards.
   */
  commit(): Promise<void>;
  /** Discards the in-progress object and everything written. */
  cancel(): Promise<void>;
}

/**
 * Sees the bytes a sender sends, in order (e.g. to hash them). `update` may run while its chunk is
 * being written; `beforeLast` runs before the last chunk is written, and throwing from it aborts the
 * send with that chunk unsent, so a client never receives a complete body that failed the check.
 */
export interface SendCheck {
  update(chunk: Buffer): void;
  beforeLast(): void;
}

/** An object opened for sending: errors such as not-found surface at open, before any byte is sent. */
export interface BlobSender {
  /** The whole object's size as stored, when the driver learned it at open. */
  readonly size?: number;
  /** Writes the (range of the) object to `dest`, waiting for each write; never ends `dest`. */
  sendTo(dest: Writable, signal?: AbortSignal, check?: SendCheck): Promise<void>;
  close(): Promise<void>;
}

/** What `deleteMany` did, key by key: every distinct key asked for is in exactly one of the two lists. */
export interface DeleteManyResult {
  /** Keys with no object any more, including those that had none to begin with. */
  deleted: string[];
  /** Keys the backend refused or failed to delete; their objects may still be there. */
  failed: { key: string; error: Error }[];
}

/**
 * A small, filesystem-like key/object store. Keys are `/`-separated relative paths of
 * `[A-Za-z0-9._-]` segments (no empty, `.` or `..` segments). Drivers throw the typed errors below,
 * never HTTP errors.
 */
export interface BlobDriver {
  readonly name: string;
  /** Throws BlobNotFoundError. */
  stat(key: string): Promise<BlobInfo>;
  /** Streams the object (or a byte range of it). Throws BlobNotFoundError, InvalidOffsetError. */
  reader(key: string, options?: ReadOptions): Promise<Readable>;
  /** Small whole-object write (manifests, links, journal records); atomic. */
  put(key: string, data: Buffer, options?: PutOptions): Promise<void>;
  /** Small whole-object read. Throws BlobNotFoundError. */
  get(key: string): Promise<Buffer>;
  writer(key: string, options: WriterOptions): Promise<BlobWriter>;
  /** Moves a committed object, overwriting `to`. Throws BlobNotFoundError. */
  move(from: string, to: string): Promise<void>;
  /** Deletes the key and everything under `key/`, including in-progress writers. Missing is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Deletes the committed object at each key (never what lies under `key/`, nor an in-progress writer
   * at it), in batches where the backend has them: for the garbage collector. A missing key counts as
   * deleted. A key that fails on its own is reported in `failed`; it throws only when the backend as a
   * whole failed (unreachable, a request refused), and then keys of earlier batches may be gone already.
   * Throws InvalidKeyError, before deleting anything, if any key is invalid.
   */
  deleteMany(keys: string[]): Promise<DeleteManyResult>;
  /** Every committed key under `prefix/` (recursively), in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /**
   * Writes the committed objects at `parts`, in order, as one committed object at `to` (replacing it)
   * without the bytes passing through this process where the backend can (S3: UploadPartCopy). The
   * parts stay. Throws BlobNotFoundError if a part is missing, and then nothing is written at `to`.
   * Callers use composeParts (compose.ts), which streams the parts where a driver has no compose.
   */
  compose?(parts: string[], to: string): Promise<void>;
  /** A faster path than `reader` for serving an object to a socket, where the driver has one. */
  openSender?(key: string, options?: ReadOptions): Promise<BlobSender>;
  /** A URL the client may be redirected to for a GET of `key`, when the driver supports it. */
  redirectUrl?(key: string): Promise<string | undefined>;
  /**
   * Removes in-progress data (and backend leftovers such as multipart uploads) untouched since the
   * cutoff whose owner is gone: `isLive(key)` says whether something still owns the object at `key`.
   */
  sweep?(olderThan: Date, isLive: (key: string) => Promise<boolean>): Promise<number>;
  /**
   * How many bytes the in-progress object at `key` holds right now (undefined: none there), where the
   * driver can tell without a writer: after an OS crash that can be fewer than its last checkpoint.
   */
  inProgressSize?(key: string): Promise<number | undefined>;
  /** Checks the backend is reachable (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class BlobDriverError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class BlobNotFoundError extends BlobDriverError {
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
  }
}

export class InvalidKeyError extends BlobDriverError {
  constructor(readonly key: string) {
    super(`invalid storage key: ${JSON.stringify(key)}`);
  }
}

export class InvalidOffsetError extends BlobDriverError {
  constructor(
    readonly key: string,
    readonly offset: number,
  ) {
    super(`invalid offset ${offset} for ${key}`);
  }
}

/**
 * The in-progress object no longer holds the bytes its checkpoint records (swept, deleted, or cut
 * short). `held`, where the driver can vouch for it, is how many of the checkpoint's first bytes are
 * still there, unchanged: a file the OS lost the unsynced tail of after a crash (see BlobWriter.close).
 */
export class InProgressLostError extends BlobDriverError {
  constructor(
    readonly key: string,
    detail: string,
    readonly held?: number,
  ) {
    super(`in-progress object ${key} ${detail}`);
  }
}

/** The object would exceed what the backend can store (S3: 10,000 parts, 5 TiB). */
export class BlobTooLargeError extends BlobDriverError {}

/** The backend failed or is unreachable; maps to 503 UNAVAILABLE. */
export class StorageUnavailableError extends BlobDriverError {}

/**
 * The backend has no room left for the write (a full disk, a quota): maps to 507 Insufficient
 * Storage. Retrying does not help until an operator frees space, so the message names the storage
 * and what ran out, e.g. "filesystem storage at /var/lib/berth/storage is out of space (ENOSPC)".
 */
export class StorageFullError extends BlobDriverError {}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Throws InvalidKeyError unless `key` is a safe relative key (no traversal, no empty segments). */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) throw new InvalidKeyError(key);
  for (const segment of key.split('/')) {
    if (!SEGMENT.test(segment) || segment === '.' || segment === '..') throw new InvalidKeyError(key);
  }
}

/** True when `key` is `prefix` itself or lies under `prefix/`. */
export function isUnder(key: string, prefix: string): boolean {
  return key === prefix || key.startsWith(`${prefix}/`);
}
