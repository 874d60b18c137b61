import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { BlobDriver, BlobWriter } from '../../storage-drivers/blob/types.js';
import { BlobNotFoundError } from '../../storage-drivers/blob/types.js';
import type { MetadataStore, UploadSession } from '../../storage-drivers/metadata/types.js';
import { OciError } from '../errors.js';
import { blobKey, uploadDir, uploadKey } from './keys.js';
import { newHash, type ParsedDigest } from './references.js';
import { newRunningHash, resumeHash, type RunningHash } from './running-hash.js';
import { BodyTooLongError, HashingStream } from './hashing.js';

/**
 * How long one PATCH may hold an upload before another request may take it over; renewed every third
 * of it while writing. Short, because after a crash the dead holder's lease blocks a resume until it ends.
 */
const LEASE_MS = 10_000;

export interface ChunkRange {
  start: number;
  end: number;
}

export interface UploadOptions {
  /** A session untouched this long is treated as gone (and swept). */
  idleTimeoutMs: number;
  /** Chunked uploads hash resumably (state saved in the session) because other processes may continue them. */
  resumableHashing: boolean;
  /** Called when a chunk starts and stops streaming, for the uploads-in-progress gauge. */
  onActiveChange?: ((delta: 1 | -1) => void) | undefined;
}

/**
 * Resumable blob uploads. The driver's in-progress object holds the bytes; the metadata store holds
 * the session (offset, revision, lease) so any process can continue it. The digest is computed on the
 * fly with OpenSSL while one process sees the chunks in order; when a chunk went to another process
 * (or this one restarted) the bytes are re-read once at the end to verify.
 */
export class UploadService {
  private readonly hashes = new Map<string, RunningHash>();

  constructor(
    private readonly driver: BlobDriver,
    private readonly metadata: MetadataStore,
    private readonly options: UploadOptions,
  ) {}

  async start(repo: string): Promise<UploadSession> {
    const now = Date.now();
    const session: UploadSession = { id: randomUUID(), repo, offset: 0, revision: 0, createdAt: now, updatedAt: now };
    await this.metadata.createUpload(session);
    return session;
  }

  /** The session, only if it belongs to `repo`. */
  async get(repo: string, id: string): Promise<UploadSession> {
    let session = await this.metadata.getUpload(id);
    if (session && session.updatedAt < Date.now() - this.options.idleTimeoutMs && !(session.leaseUntil !== undefined && session.leaseUntil > Date.now())) {
      await this.discard(id);
      session = undefined;
    }
    if (!session || session.repo !== repo) throw new OciError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown in ${repo}: it finished, was cancelled or expired; start a new one`);
    return session;
  }

  /**
   * Appends one chunk. `range` (from Content-Range) must start at the current offset; without it the
   * chunk is appended wherever the upload stands (docker's streamed PATCH).
   */
  async append(repo: string, id: string, body: Readable, range: ChunkRange | undefined, length: number | undefined, signal?: AbortSignal): Promise<UploadSession> {
    const session = await this.get(repo, id);
    if (range && length !== undefined && range.end - range.start + 1 !== length) {
      throw new OciError('RANGE_INVALID', `Content-Range ${range.start}-${range.end} does not match Content-Length ${length}`, undefined, rangeHeaders(session.offset));
    }
    return this.withLease(session, async (held) => {
      const writer = await this.driver.writer(uploadKey(id), { append: held.offset > 0, signal });
      let ok = false;
      try {
        if (range && range.start !== writer.size) {
          throw new OciError('RANGE_INVALID', `chunk starts at byte ${range.start} but the upload holds ${writer.size} bytes; resume from ${writer.size}`, undefined, rangeHeaders(writer.size));
        }
        const limit = range ? range.end - range.start + 1 : length;
        // A client that sends Content-Range sends chunks, maybe to different processes: hash resumably.
        await this.writeChunk(id, held, writer, body, limit, this.options.resumableHashing && range !== undefined, signal);
        if (limit !== undefined && writer.size - held.offset < limit && range) {
          throw new OciError('SIZE_INVALID', `chunk ended after ${writer.size - held.offset} of the ${limit} bytes its Content-Range announced`);
        }
        ok = true;
      } finally {
        if (!ok) this.hashes.delete(id);
        await writer.close();
        // Even a failed chunk may have stored some bytes: the client resumes after them.
        held.offset = writer.size;
        held.hashState = ok ? this.hashes.get(id)?.save() : undefined;
      }
      return { ...held };
    });
  }

  /**
   * Finishes the upload: appends the optional last chunk, verifies the digest, moves the bytes to
   * their content address and links the blob into the repository. Nothing is visible before the digest
   * checks out; a mismatch discards the upload.
   */
  async finish(repo: string, id: string, digest: ParsedDigest, body: Readable | undefined, range: ChunkRange | undefined, length: number | undefined, signal?: AbortSignal): Promise<number> {
    const session = await this.get(repo, id);
    let size = 0;
    await this.withLease(session, async (held) => {
      const writer = await this.driver.writer(uploadKey(id), { append: held.offset > 0, signal });
      if (held.offset > 0 && writer.size === 0 && !range && (length ?? 0) === 0) {
        // The session holds bytes its in-progress object lacks: a finish was cut short after its commit.
        await writer.cancel();
        if (!(await this.recoverFinish(repo, id, digest, held.offset))) {
          await this.discard(id);
          throw new OciError('BLOB_UPLOAD_INVALID', `upload ${id} lost its bytes (the registry restarted while finishing it); push the blob again`);
        }
        size = held.offset;
        return { ...held };
      }
      let committed = false;
      try {
        if (range && range.start !== writer.size) {
          throw new OciError('RANGE_INVALID', `chunk starts at byte ${range.start} but the upload holds ${writer.size} bytes`, undefined, rangeHeaders(writer.size));
        }
        if (body && (length === undefined || length > 0)) {
          await this.writeChunk(id, held, writer, body, range ? range.end - range.start + 1 : length, this.options.resumableHashing && range !== undefined, signal);
        }
        size = writer.size;
        await writer.commit();
        committed = true;
      } finally {
        if (!committed) {
          this.hashes.delete(id);
          await writer.close();
        }
      }
      await this.verifyAndLink(repo, id, digest, size, held);
      await this.metadata.deleteUpload(id);
      return { ...held, offset: size };
    }, true);
    return size;
  }

  /**
   * Committed bytes sit at the upload's key: checks their digest, moves them to their content address
   * and links the blob into `repo`. Any failure from here discards the whole upload.
   */
  private async verifyAndLink(repo: string, id: string, digest: ParsedDigest, size: number, held?: UploadSession): Promise<void> {
    try {
      const actual = await this.digestOf(id, digest, size, held);
      if (actual !== digest.value) {
        throw new OciError('DIGEST_INVALID', `the uploaded content has digest ${actual}, not ${digest.value}; the upload was discarded, push the blob again`);
      }
      await this.place(digest, id);
      await this.metadata.linkBlob(repo, { digest: digest.value, size });
    } catch (err) {
      await this.discard(id).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A finish cut short by a crash may have committed the bytes (or even moved them to their content
   * address) before the session was removed; a retried PUT must complete it, not hash an empty file.
   * Returns true when it did, leaving the session removed.
   */
  private async recoverFinish(repo: string, id: string, digest: ParsedDigest, size: number): Promise<boolean> {
    const sizeAt = (key: string) =>
      this.driver.stat(key).then(
        (info) => info.size,
        (err: unknown) => {
          if (err instanceof BlobNotFoundError) return undefined;
          throw err;
        },
      );
    const committed = await sizeAt(uploadKey(id));
    if (committed !== undefined) {
      if (committed !== size) return false;
      await this.verifyAndLink(repo, id, digest, size);
    } else {
      // Verified bytes already sit at their content address: only the link (or the cleanup) was missing.
      if ((await sizeAt(blobKey(digest))) !== size) return false;
      await this.metadata.linkBlob(repo, { digest: digest.value, size });
      await this.driver.delete(uploadDir(id));
    }
    await this.metadata.deleteUpload(id);
    return true;
  }

  async cancel(repo: string, id: string): Promise<void> {
    await this.get(repo, id);
    await this.discard(id);
  }

  /** Removes sessions idle since before `cutoff` and their bytes. Returns how many. */
  async sweep(cutoff: number, limit = 1000): Promise<number> {
    const stale = await this.metadata.listStaleUploads(cutoff, limit);
    for (const session of stale) {
      if (session.leaseUntil !== undefined && session.leaseUntil > Date.now()) continue;
      await this.discard(session.id);
    }
    return stale.length;
  }

  private async discard(id: string): Promise<void> {
    this.hashes.delete(id);
    await this.driver.delete(uploadDir(id));
    await this.metadata.deleteUpload(id);
  }

  /** Moves verified bytes to their content address; when another push got there first, keeps theirs. */
  private async place(digest: ParsedDigest, id: string): Promise<void> {
    const target = blobKey(digest);
    const exists = () =>
      this.driver.stat(target).then(
        () => true,
        (err: unknown) => {
          if (err instanceof BlobNotFoundError) return false;
          throw err;
        },
      );
    if (!(await exists())) {
      try {
        await this.driver.move(uploadKey(id), target);
      } catch (err) {
        // A concurrent push of the same blob may have won the move (some stores fail the loser):
        // whatever sits at a content address was verified by whoever put it there.
        if (!(await exists())) throw err;
      }
    }
    await this.driver.delete(uploadDir(id));
  }

  /** The upload's running hash if it covers exactly the stored bytes: kept here, or resumed from the session. */
  private async runningHash(id: string, held: UploadSession, stored: number, resumable: boolean): Promise<RunningHash | undefined> {
    let local = this.hashes.get(id);
    if (!local || local.offset !== stored) {
      if (stored === 0) local = await newRunningHash(resumable);
      else if (held.hashState !== undefined && held.offset === stored) local = await resumeHash(held.hashState, stored);
      else local = undefined;
      if (local) this.hashes.set(id, local);
      else this.hashes.delete(id);
    }
    return local;
  }

  private async writeChunk(id: string, held: UploadSession, writer: BlobWriter, body: Readable, limit: number | undefined, resumable: boolean, signal?: AbortSignal): Promise<void> {
    const local = await this.runningHash(id, held, writer.size, resumable);
    const hashing = new HashingStream(local, limit);
    try {
      await Promise.all([pipeline(body, hashing, { signal }), writer.write(hashing, signal)]);
    } catch (err) {
      if (err instanceof BodyTooLongError) throw new OciError('SIZE_INVALID', err.message);
      throw err;
    }
    if (local) local.offset += hashing.bytes;
  }

  /**
   * The digest of the committed upload bytes: from the running hash when it covers them all (this
   * process saw every chunk, or resumed the saved state); otherwise the bytes are read back once.
   */
  private async digestOf(id: string, expected: ParsedDigest, size: number, held?: UploadSession): Promise<string> {
    const local = expected.algorithm === 'sha256' && held ? await this.runningHash(id, held, size, false) : this.hashes.get(id);
    this.hashes.delete(id);
    if (local && local.offset === size && expected.algorithm === 'sha256') return `sha256:${local.hex()}`;
    const hash = newHash(expected.algorithm);
    const src = await this.driver.reader(uploadKey(id));
    for await (const chunk of src) hash.update(chunk as Buffer);
    return `${expected.algorithm}:${hash.digest('hex')}`;
  }

  /**
   * Runs `work` while holding the upload's lease: a compare-and-set on the session's revision makes
   * a concurrent PATCH of the same upload (on any process) fail with 416 instead of interleaving bytes.
   * The lease is released afterwards, except when `work` succeeded and ended the session itself.
   * `work` may update `held.offset` as bytes are stored, so a failed chunk still records them.
   */
  private async withLease(session: UploadSession, work: (held: UploadSession) => Promise<UploadSession>, sessionEndsOnSuccess = false): Promise<UploadSession> {
    const now = Date.now();
    if (session.leaseUntil !== undefined && session.leaseUntil > now) {
      throw new OciError('RANGE_INVALID', 'another request is writing to this upload; wait for it, then check the upload status', undefined, rangeHeaders(session.offset));
    }
    const current: UploadSession = { ...session, revision: session.revision + 1, leaseUntil: now + LEASE_MS, updatedAt: now };
    if (!(await this.metadata.updateUpload(session.id, session.revision, current))) {
      throw new OciError('RANGE_INVALID', 'another request changed this upload at the same time; check the upload status and resume', undefined, rangeHeaders(session.offset));
    }
    this.options.onActiveChange?.(1);
    let renewing: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      renewing = renewing
        .then(async () => {
          const next = { ...current, revision: current.revision + 1, leaseUntil: Date.now() + LEASE_MS, updatedAt: Date.now() };
          if (await this.metadata.updateUpload(current.id, current.revision, next)) {
            current.revision = next.revision;
            current.leaseUntil = next.leaseUntil;
          }
        })
        .catch(() => undefined);
    }, LEASE_MS / 3);
    timer.unref();
    let result: UploadSession | undefined;
    try {
      result = await work(current);
      return result;
    } finally {
      clearInterval(timer);
      await renewing;
      this.options.onActiveChange?.(-1);
      if (!(result && sessionEndsOnSuccess)) {
        const final: UploadSession = { ...(result ?? current), revision: current.revision + 1, updatedAt: Date.now() };
        delete final.leaseUntil;
        await this.metadata.updateUpload(session.id, current.revision, final).catch(() => undefined);
        if (result) result.revision = final.revision;
      }
    }
  }
}

/** The headers telling a client how many bytes an upload holds (`Range: 0-<last>`). */
export function rangeHeaders(offset: number): Record<string, string> {
  return { Range: `0-${Math.max(offset - 1, 0)}` };
}
