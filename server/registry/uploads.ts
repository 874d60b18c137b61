import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { BlobDriver, BlobWriter, WriterCheckpoint } from '../../storage-drivers/blob/types.js';
import { BlobNotFoundError, InProgressLostError, StorageFullError } from '../../storage-drivers/blob/types.js';
import type { MetadataStore, UploadSession } from '../../storage-drivers/metadata/types.js';
import { OciError } from '../../errors/oci-error.js';
import { blobKey, uploadDir, uploadIdOfKey, uploadKey } from './keys.js';
import { newHash, type ParsedDigest } from './references.js';
import { namespaceOf } from './quotas/rules.js';
import { newRunningHash, resumeHash, type RunningHash } from './running-hash.js';
import { BodyTimeoutError, BodyTooLongError, HashingStream } from './hashing.js';
import type { GcUsage } from './gc/usage.js';
import { QuotaMeter } from './quotas/meter.js';
import { QuotaStreamRefusal, type Quotas } from './quotas/service.js';
import type { EventOrigin } from '../../storage-drivers/metadata/event-types.js';

/**
 * How long one request may hold an upload before another request may take it over; renewed every
 * third of it while the request runs. Short, because after a crash the dead holder's lease blocks a
 * resume until it ends.
 */
const LEASE_MS = 10_000;

export interface ChunkRange {
  start: number;
  end: number;
}

export interface UploadOptions {
  /** A session untouched this long (and not held by a request) is treated as gone, and swept. */
  idleTimeoutMs: number;
  /** Chunked uploads hash resumably (state saved in the session) because other processes may continue them. */
  resumableHashing: boolean;
  /** A request body that sends no byte for this long is cut; the upload keeps what it stored. */
  bodyTimeoutMs: number;
  /** Called when a request starts and stops holding an upload, for the uploads-in-progress gauge. */
  onActiveChange?: ((delta: 1 | -1) => void) | undefined;
  /** The clock for expiry and leases (tests move it). */
  now?: () => number;
  /** Garbage collection's pins and queue. */
  usage: GcUsage;
  /** Storage quotas: checked at start, while bytes stream and at finish; none: not counted (the CLI's sweep). */
  quotas?: Quotas | undefined;
}

/** What a request adds to an upload: its body, and the range and length it declared. */
export interface Chunk {
  body: Readable;
  range?: ChunkRange | undefined;
  length?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Resumable blob uploads. The session record in the metadata store is the upload's one owner: its
 * offset, hash state and the driver's checkpoint of the in-progress bytes change together in one
 * compare-and-set, under one lease. The driver holds the bytes and nothing else; a session whose
 * bytes are gone is dead. The digest is computed on the fly (OpenSSL while one process sees every
 * chunk, a resumable hash whose state travels in the session otherwise); a finish only ever links
 * bytes this session received and hashed.
 */
export class UploadService {
  /** OpenSSL hashes of uploads this process is receiving: a cache, valid only at the session's offset. */
  private readonly hashes = new Map<string, RunningHash>();
  /** Uploads a request of this process is holding right now (other processes' show as a lease). */
  private readonly active = new Set<string>();
  private readonly now: () => number;

  constructor(
    private readonly driver: BlobDriver,
    private readonly metadata: MetadataStore,
    private readonly options: UploadOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  async start(repo: string): Promise<UploadSession> {
    const now = this.now();
    const session: UploadSession = { id: randomUUID(), repo, offset: 0, revision: 0, createdAt: now, updatedAt: now };
    await this.options.quotas?.assertRoomToStart(repo);
    await this.metadata.createUpload(session);
    return session;
  }

  /** The session, only if it belongs to `repo` and has not expired. */
  async get(repo: string, id: string): Promise<UploadSession> {
    let session = await this.metadata.getUpload(id);
    if (session && this.expired(session)) {
      await this.discard(session);
      session = undefined;
    }
    if (!session || session.repo !== repo)
      throw new OciError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown in ${repo}: it finished, was cancelled or expired; start a new one`);
    return session;
  }

  /**
   * The session as a status request reports it. While no request holds it, its offset is where its
   * bytes really end: after an OS crash fewer may be there than it records (chunks are not synced
   * before their 202), and the client resumes from the Range it is told. The next chunk records it.
   */
  async status(repo: string, id: string): Promise<UploadSession> {
    const session = await this.get(repo, id);
    if (this.leased(session) || session.verified !== undefined || session.driverState !== undefined || !this.driver.inProgressSize) return session;
    const size = await this.driver.inProgressSize(uploadKey(id));
    if (size === undefined || size >= session.offset) return session;
    return { ...session, offset: size };
  }

  /**
   * Appends one chunk. `range` (from Content-Range) must start at the current offset; without it the
   * chunk is appended wherever the upload stands (docker's streamed PATCH).
   */
  async append(repo: string, id: string, chunk: Chunk): Promise<UploadSession> {
    const session = await this.get(repo, id);
    const { range, length } = chunk;
    if (range && length !== undefined && range.end - range.start + 1 !== length) {
      throw new UploadRangeError(session.offset, `Content-Range ${range.start}-${range.end} does not match Content-Length ${length}`);
    }
    return this.withLease(session, chunk.signal, async (held, signal) =>
      this.releasedWhenFull(held, async () => {
        const writer = await this.openWriter(held, signal);
        let ok = false;
        try {
          assertStartsAt(range, held.offset);
          const limit = range ? range.end - range.start + 1 : length;
          // A client that sends Content-Range sends chunks, maybe to different processes: hash resumably.
          const hash = await this.runningHash(held, this.options.resumableHashing && range !== undefined);
          await this.writeChunk(writer, hash, chunk.body, limit, signal, this.meterFor(held, limit));
          if (limit !== undefined && range && writer.size - held.offset < limit) {
            throw new OciError('SIZE_INVALID', `chunk ended after ${writer.size - held.offset} of the ${limit} bytes its Content-Range announced`);
          }
          ok = true;
        } finally {
          // Even a failed chunk may have stored some bytes: the checkpoint keeps them, the client resumes after them.
          const checkpoint = await writer.close();
          const hash = this.hashes.get(held.id);
          if (!ok || hash?.offset !== checkpoint.size) this.hashes.delete(held.id);
          const hashState = ok ? this.hashes.get(held.id)?.save() : undefined;
          setCheckpoint(held, checkpoint, hashState);
        }
        return held;
      }),
    );
  }

  /**
   * Finishes the upload: appends the optional last chunk, verifies the digest, moves the bytes to
   * their content address (replacing whatever is there: these are verified) and links the blob into
   * the repository. Nothing is visible before the digest checks out; a mismatch discards the upload.
   */
  async finish(repo: string, id: string, digest: ParsedDigest, chunk: Partial<Chunk> = {}, origin?: EventOrigin): Promise<number> {
    const session = await this.get(repo, id);
    let size = 0;
    await this.withLease(
      session,
      chunk.signal,
      async (held, signal, save) => {
        if (held.verified === undefined) await this.releasedWhenFull(held, () => this.commitAndVerify(held, save, digest, chunk, signal));
        const verified = held.verified as NonNullable<UploadSession['verified']>;
        if (verified.digest !== digest.value) {
          await this.discard(held);
          throw new OciError(
            'DIGEST_INVALID',
            `the uploaded content has digest ${verified.digest}, not ${digest.value}; the upload was discarded, push the blob again`,
          );
        }
        size = verified.size;
        // Pinned before the bytes move: GC cannot delete what this finish is about to store and link,
        // and waits out a deletion of the same digest already under way (the bytes are still here).
        const pinned = await this.options.usage.pinWaiting([digest.value]);
        if (!('pin' in pinned)) {
          throw new OciError('UNAVAILABLE', `blob ${digest.value} is being deleted by garbage collection; retry the upload's last request in a moment`);
        }
        try {
          // Counted in the namespace before the link, and the upload's reservation ends with it.
          await this.chargeFinish(held, repo, digest.value, size);
          try {
            await this.place(held, digest);
            await this.metadata.linkBlob(repo, { digest: digest.value, size }, { via: 'push', event: origin });
          } catch (err) {
            await this.options.quotas?.undoCharge(repo, 'blob', digest.value).catch(() => undefined);
            throw err;
          }
        } finally {
          await pinned.pin.release();
        }
        // Nothing references it yet: GC looks again once the delay is over.
        await this.options.usage.queueBlobs([digest.value]);
        await this.driver.delete(uploadDir(id));
        await this.metadata.deleteUpload(id);
        return held;
      },
      true,
    );
    return size;
  }

  async cancel(repo: string, id: string): Promise<void> {
    await this.discard(await this.get(repo, id));
  }

  /**
   * Removes expired sessions and their bytes, then whatever storage holds for uploads that no session
   * owns any more (a crash between the two, S3 multipart uploads). Returns how many sessions went.
   */
  async sweep(cutoff: number, limit = 1000): Promise<number> {
    const stale = await this.metadata.listStaleUploads(cutoff, limit);
    let removed = 0;
    for (const session of stale) {
      if (this.leased(session)) continue;
      await this.discard(session);
      removed++;
    }
    await this.driver.sweep?.(new Date(cutoff), async (key) => {
      const id = uploadIdOfKey(key);
      return id === undefined || (await this.metadata.getUpload(id)) !== undefined;
    });
    return removed;
  }

  /**
   * Runs `work`; when storage is out of space the upload is ended and its bytes freed, so what it
   * held does not keep every other push failing until it expires. The client starts again later.
   */
  private async releasedWhenFull<T>(held: UploadSession, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof StorageFullError) await this.discard(held).catch(() => undefined);
      // Past its namespace's quota: the session ends and its bytes go at once, not at expiry.
      if (err instanceof QuotaStreamRefusal) {
        await this.discard(held).catch(() => undefined);
        throw err.error;
      }
      throw err;
    }
  }

  /** A meter of this request's bytes against the namespace's quota; none without a rule. */
  private meterFor(held: UploadSession, length: number | undefined): QuotaMeter | undefined {
    const quotas = this.options.quotas;
    if (!quotas || quotas.limitOf(namespaceOf(held.repo)) === undefined) return undefined;
    return new QuotaMeter(quotas, held.repo, held.id, held.offset, length === undefined ? undefined : held.offset + length);
  }

  /** The finished blob counted in the namespace; refused (session ended, bytes freed) when it does not fit. */
  private async chargeFinish(held: UploadSession, repo: string, digest: string, size: number): Promise<void> {
    const quotas = this.options.quotas;
    if (!quotas) return;
    try {
      await quotas.charge(repo, 'blob', digest, size, 'finish', held.id);
    } catch (err) {
      if (err instanceof OciError && err.code === 'DENIED') await this.discard(held).catch(() => undefined);
      throw err;
    }
  }

  private expired(session: UploadSession): boolean {
    return session.updatedAt < this.now() - this.options.idleTimeoutMs && !this.leased(session);
  }

  private leased(session: UploadSession): boolean {
    return this.active.has(session.id) || (session.leaseUntil !== undefined && session.leaseUntil > this.now());
  }

  /** Ends the session and frees its bytes (an S3 multipart upload included, through its checkpoint). */
  private async discard(session: UploadSession): Promise<void> {
    this.hashes.delete(session.id);
    await this.options.quotas?.unreserve(session.repo, session.id);
    if (session.driverState !== undefined) {
      try {
        await (await this.driver.writer(uploadKey(session.id), { resume: checkpointOf(session) })).cancel();
      } catch (err) {
        // Gone already, or unusable: the delete below removes whatever is left.
        if (!(err instanceof InProgressLostError) && !(err instanceof BlobNotFoundError)) throw err;
      }
    }
    await this.driver.delete(uploadDir(session.id));
    await this.metadata.deleteUpload(session.id);
  }

  /**
   * A writer at the session's checkpoint; a session whose bytes are gone is dead, and discarded.
   * With `committedOk`, bytes this session already committed at its own key (a finish cut short) give
   * undefined instead. Bytes that are only partly there (an OS crash took the unsynced tail of what
   * earlier chunks wrote) move the session back to where they end: the session records that offset
   * when the lease is released, and the client, told the real Range, sends the rest again.
   */
  private async openWriter(held: UploadSession, signal: AbortSignal): Promise<BlobWriter>;
  private async openWriter(held: UploadSession, signal: AbortSignal, committedOk: true): Promise<BlobWriter | undefined>;
  private async openWriter(held: UploadSession, signal: AbortSignal, committedOk = false): Promise<BlobWriter | undefined> {
    try {
      return await this.driver.writer(uploadKey(held.id), { resume: checkpointOf(held), signal });
    } catch (err) {
      if (!(err instanceof InProgressLostError)) throw err;
      if (committedOk && (await this.exists(uploadKey(held.id)))) return undefined;
      if (err.held !== undefined && err.held < held.offset && held.driverState === undefined) {
        const writer = await this.reopenShorter(held, err.held, signal);
        if (writer) return writer;
      }
      await this.discard(held);
      throw lostError(held);
    }
  }

  /**
   * A writer where the bytes really end, `size` of the session's recorded offset. The hash state covers
   * bytes that are no longer all there, so it goes: the finish reads the bytes back and hashes them.
   */
  private async reopenShorter(held: UploadSession, size: number, signal: AbortSignal): Promise<BlobWriter | undefined> {
    try {
      const writer = await this.driver.writer(uploadKey(held.id), { resume: { size }, signal });
      this.hashes.delete(held.id);
      setCheckpoint(held, { size }, undefined);
      return writer;
    } catch (err) {
      if (err instanceof InProgressLostError) return undefined;
      throw err;
    }
  }

  /**
   * Appends the last chunk, commits the bytes at the upload's own key and hashes them; on a match the
   * session records the verified digest before anything becomes visible, so a finish cut short by a
   * crash can be completed by a retry, and only for that digest.
   */
  private async commitAndVerify(held: UploadSession, save: SaveSession, digest: ParsedDigest, chunk: Partial<Chunk>, signal: AbortSignal): Promise<void> {
    let size: number;
    let actual: string | undefined;
    const writer = await this.openWriter(held, signal, true);
    if (writer === undefined) {
      // A finish was cut short after its commit: the bytes at the upload's own key are this session's.
      size = (await this.driver.stat(uploadKey(held.id))).size;
    } else {
      let committed = false;
      try {
        assertStartsAt(chunk.range, held.offset);
        const hash = await this.runningHash(held, this.options.resumableHashing && chunk.range !== undefined);
        if (chunk.body && (chunk.length === undefined || chunk.length > 0)) {
          const limit = chunk.range ? chunk.range.end - chunk.range.start + 1 : chunk.length;
          await this.writeChunk(writer, hash, chunk.body, limit, signal, this.meterFor(held, limit));
        }
        size = writer.size;
        // The running hash is only good for a sha256 digest that covers every byte.
        if (hash && hash.offset === size && digest.algorithm === 'sha256') actual = `sha256:${hash.hex()}`;
        await writer.commit();
        committed = true;
      } finally {
        this.hashes.delete(held.id);
        if (!committed) {
          setCheckpoint(held, await writer.close(), undefined);
        }
      }
    }
    actual ??= await this.readBackDigest(held.id, digest);
    if (actual !== digest.value) {
      await this.discard(held);
      throw new OciError('DIGEST_INVALID', `the uploaded content has digest ${actual}, not ${digest.value}; the upload was discarded, push the blob again`);
    }
    await save({ offset: size, verified: { digest: actual, size } });
  }

  /**
   * Moves verified bytes to their content address, replacing what is there (a corrupt or quarantined
   * copy is healed by the next push). After a crash past the move only the link is missing.
   */
  private async place(held: UploadSession, digest: ParsedDigest): Promise<void> {
    const target = blobKey(digest);
    try {
      await this.driver.move(uploadKey(held.id), target);
    } catch (err) {
      // Moved before a crash, or a concurrent push of the same blob won the move (some stores fail the
      // loser): whatever sits at a content address was verified by whoever put it there.
      if (await this.exists(target)) return;
      if (!(err instanceof BlobNotFoundError)) throw err;
      await this.discard(held);
      throw lostError(held);
    }
  }

  private async exists(key: string): Promise<boolean> {
    return this.driver.stat(key).then(
      () => true,
      (err: unknown) => {
        if (err instanceof BlobNotFoundError) return false;
        throw err;
      },
    );
  }

  /** The upload's running hash if it covers exactly the stored bytes: kept here, or resumed from the session. */
  private async runningHash(held: UploadSession, resumable: boolean): Promise<RunningHash | undefined> {
    let local = this.hashes.get(held.id);
    if (!local || local.offset !== held.offset) {
      if (held.offset === 0) local = await newRunningHash(resumable);
      else if (held.hashState !== undefined) local = await resumeHash(held.hashState, held.offset);
      else local = undefined;
      if (local) this.hashes.set(held.id, local);
      else this.hashes.delete(held.id);
    }
    return local;
  }

  private async writeChunk(
    writer: BlobWriter,
    hash: RunningHash | undefined,
    body: Readable,
    limit: number | undefined,
    signal: AbortSignal,
    meter: QuotaMeter | undefined,
  ): Promise<void> {
    const hashing = new HashingStream(hash, { limit, idleTimeoutMs: this.options.bodyTimeoutMs });
    try {
      const piped = meter ? pipeline(body, meter, hashing, { signal }) : pipeline(body, hashing, { signal });
      await Promise.all([piped, writer.write(hashing, signal)]);
    } catch (err) {
      if (meter?.refusal) throw meter.refusal;
      if (err instanceof BodyTooLongError) throw new OciError('SIZE_INVALID', err.message);
      if (err instanceof BodyTimeoutError || hashing.errored instanceof BodyTimeoutError) {
        const timeout = err instanceof BodyTimeoutError ? err : (hashing.errored as BodyTimeoutError);
        throw new UploadStalledError(`${timeout.message}; the upload keeps the bytes it received: check its status and resume`);
      }
      throw err;
    } finally {
      if (hash) hash.offset += hashing.bytes;
    }
  }

  /** The digest of the committed upload bytes, read back once (no running hash covered them). */
  private async readBackDigest(id: string, expected: ParsedDigest): Promise<string> {
    const hash = newHash(expected.algorithm);
    const src = await this.driver.reader(uploadKey(id));
    for await (const chunk of src) hash.update(chunk as Buffer);
    return `${expected.algorithm}:${hash.digest('hex')}`;
  }

  /**
   * Runs `work` while holding the upload's lease: a compare-and-set on the session's revision makes a
   * concurrent request for the same upload (on any process) fail with 416 instead of interleaving
   * bytes. The lease is renewed while `work` runs; if a renewal loses (another request took the
   * session over), `work`'s signal aborts so it stops writing. Afterwards the session, as `work` left
   * it in `held`, is stored with the lease released — unless `work` succeeded and ended the session.
   */
  private async withLease(
    session: UploadSession,
    requestSignal: AbortSignal | undefined,
    work: (held: UploadSession, signal: AbortSignal, save: SaveSession) => Promise<UploadSession>,
    sessionEndsOnSuccess = false,
  ): Promise<UploadSession> {
    if (this.leased(session)) throw busyError(session.offset, 'another request is writing to this upload; wait for it, then check the upload status');
    const now = this.now();
    const held: UploadSession = { ...session, revision: session.revision + 1, leaseUntil: now + LEASE_MS, updatedAt: now };
    if (!(await this.metadata.updateUpload(session.id, session.revision, held))) throw busyError(session.offset);
    this.active.add(session.id);
    const lost = new AbortController();
    const signal = requestSignal ? AbortSignal.any([requestSignal, lost.signal]) : lost.signal;
    this.options.onActiveChange?.(1);
    // Renewals and saves go one after another: each is a compare-and-set on the revision the last one left.
    let renewing: Promise<void> = Promise.resolve();
    const store = (changes: Partial<UploadSession>): Promise<boolean> => {
      const step = renewing.then(async () => {
        const at = this.now();
        const next: UploadSession = { ...held, ...changes, revision: held.revision + 1, updatedAt: at };
        if (!(await this.metadata.updateUpload(held.id, held.revision, next))) return false;
        Object.assign(held, next);
        return true;
      });
      renewing = step.then(
        () => undefined,
        () => undefined,
      );
      return step;
    };
    const save: SaveSession = async (changes) => {
      if (!(await store(changes))) throw busyError(held.offset);
    };
    const timer = setInterval(() => {
      store({ leaseUntil: this.now() + LEASE_MS }).then(
        (won) => {
          if (!won) lost.abort(new Error('the upload was taken over by another request'));
        },
        () => undefined,
      );
    }, LEASE_MS / 3);
    timer.unref();
    const stopHolding = async (): Promise<void> => {
      clearInterval(timer);
      await renewing;
      this.active.delete(session.id);
      this.options.onActiveChange?.(-1);
    };
    /** Stores the session as `work` left it, without the lease. */
    const release = async (): Promise<boolean> => {
      await stopHolding();
      const final: UploadSession = { ...held, revision: held.revision + 1, updatedAt: this.now() };
      delete final.leaseUntil;
      const stored = await this.metadata.updateUpload(session.id, held.revision, final);
      if (stored) Object.assign(held, final);
      return stored;
    };
    let result: UploadSession;
    try {
      result = await work(held, signal, save);
    } catch (err) {
      // The client gets this error; the release is best effort.
      await release().catch(() => false);
      throw err;
    }
    if (sessionEndsOnSuccess) {
      await stopHolding();
    } else if (!(await release())) {
      // After a success the client must not hear of bytes the session does not record.
      throw busyError(held.offset);
    }
    return result;
  }
}

/** Stores changes to the held session (a compare-and-set under the lease); throws if the lease was lost. */
type SaveSession = (changes: Partial<UploadSession>) => Promise<void>;

/** Records where the bytes stand; absent states are left out, not stored as undefined. */
function setCheckpoint(held: UploadSession, checkpoint: WriterCheckpoint, hashState: string | undefined): void {
  held.offset = checkpoint.size;
  if (checkpoint.state === undefined) delete held.driverState;
  else held.driverState = checkpoint.state;
  if (hashState === undefined) delete held.hashState;
  else held.hashState = hashState;
}

function checkpointOf(session: UploadSession): { size: number; state?: string } {
  return session.driverState === undefined ? { size: session.offset } : { size: session.offset, state: session.driverState };
}

function assertStartsAt(range: ChunkRange | undefined, offset: number): void {
  if (range && range.start !== offset) {
    throw new UploadRangeError(offset, `chunk starts at byte ${range.start} but the upload holds ${offset} bytes; resume from ${offset}`);
  }
}

function busyError(offset: number, message = 'another request changed this upload at the same time; check the upload status and resume'): UploadBusyError {
  return new UploadBusyError(offset, message);
}

function lostError(session: UploadSession): OciError {
  return new OciError('BLOB_UPLOAD_UNKNOWN', `upload ${session.id} no longer holds the ${session.offset} bytes it received; start a new upload`);
}

/**
 * A chunk that does not fit the upload: it starts elsewhere than the upload's offset, or its
 * Content-Range and Content-Length disagree. `offset` is how many bytes the upload holds, so the
 * client can resume after them.
 */
export class UploadRangeError extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
    this.name = 'UploadRangeError';
  }
}

/**
 * Another request holds (or just changed) the upload. Not a bad range, but told apart from one in
 * code only: on the wire it stays what the spec's clients already handle, see server/errors.ts.
 */
export class UploadBusyError extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
    this.name = 'UploadBusyError';
  }
}

/** The client stopped sending a chunk's body; the bytes that did arrive are kept. */
export class UploadStalledError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UploadStalledError';
  }
}
