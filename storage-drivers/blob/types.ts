import type { Readable, Writable } from 'node:stream';

/** What a driver knows about one stored object. */
export interface BlobInfo {
  key: string;
  size: number;
  modifiedAt: Date;
}

export interface ReadOptions {
  /** First byte to read (inclusive). */
  start?: number;
  /** Last byte to read (inclusive). */
  end?: number;
  signal?: AbortSignal;
}

export interface WriterOptions {
  /**
   * true: continue an existing in-progress object at `key` (resumable upload, possibly written by
   * another process); false: start a new one, discarding any previous in-progress data at `key`.
   */
  append: boolean;
  signal?: AbortSignal;
}

/**
 * A writer for an in-progress object. Data written is not visible through `stat`/`reader` at `key`
 * until `commit()`; `close()` persists what was written so a later `writer(key, { append: true })`
 * (in this or another process) continues from `size`.
 */
export interface BlobWriter {
  /** Bytes written so far, across all writers of this in-progress object. */
  readonly size: number;
  /** Appends the whole stream; resolves with the number of bytes appended. */
  write(src: Readable, signal?: AbortSignal): Promise<number>;
  /** Flushes and releases the writer; the in-progress object can be resumed later. */
  close(): Promise<void>;
  /** Makes the written bytes readable at `key`. The writer is unusable afterwards. */
  commit(): Promise<void>;
  /** Discards the in-progress object and everything written. */
  cancel(): Promise<void>;
}

/** An object opened for sending: errors such as not-found surface at open, before any byte is sent. */
export interface BlobSender {
  /** Writes the (range of the) object to `dest`, waiting for each write; never ends `dest`. */
  sendTo(dest: Writable, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
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
  put(key: string, data: Buffer): Promise<void>;
  /** Small whole-object read. Throws BlobNotFoundError. */
  get(key: string): Promise<Buffer>;
  writer(key: string, options: WriterOptions): Promise<BlobWriter>;
  /** Moves a committed object, overwriting `to`. Throws BlobNotFoundError. */
  move(from: string, to: string): Promise<void>;
  /** Deletes the key and everything under `key/`, including in-progress writers. Missing is not an error. */
  delete(key: string): Promise<void>;
  /** Every committed key under `prefix/` (recursively), in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /** A faster path than `reader` for serving an object to a socket, where the driver has one. */
  openSender?(key: string, options?: ReadOptions): Promise<BlobSender>;
  /** A URL the client may be redirected to for a GET of `key`, when the driver supports it. */
  redirectUrl?(key: string): Promise<string | undefined>;
  /** Removes in-progress data (and backend leftovers such as multipart uploads) older than the cutoff. */
  sweep?(olderThan: Date): Promise<number>;
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
  constructor(readonly key: string, readonly offset: number) {
    super(`invalid offset ${offset} for ${key}`);
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
