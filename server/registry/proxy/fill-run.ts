import { Readable } from 'node:stream';
import type { Hash } from 'node:crypto';
import { composeParts } from '../../../storage-drivers/blob/compose.js';
import { BlobNotFoundError, type BlobDriver } from '../../../storage-drivers/blob/types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { OciError } from '../../errors.js';
import { blobKey, fillChunkKey, fillDir } from '../keys.js';
import { newHash, type ParsedDigest } from '../references.js';
import { writeFillState, type FillState } from './fill-state.js';

/** What a fill reads from: the blob's whole body and the size its source declared. */
export interface FillSource {
  size: number;
  stream: Readable;
}

/** Opens the source once; `signal` aborts when the fill gives up (failed, lease lost). */
export type OpenFillSource = (signal: AbortSignal) => Promise<FillSource>;

/** What one fill needs from the BlobFills that runs it. */
export interface FillContext {
  driver: BlobDriver;
  metadata: MetadataStore;
  holder: string;
  leaseMs: number;
  sourceIdleMs: number;
  /** Counts `size` against the in-flight bound; throws when over it. Returns the release. */
  reserve(size: number): () => void;
}

export function fillLeaseName(digest: ParsedDigest): string {
  return `fill:${digest.value}`;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Waiters attach their own handlers; a fill nobody waits on must not be an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** How a fill ended: its blob committed, failed (source, digest, storage), or given up to a process that took it over. */
export type FillOutcome = 'committed' | 'failed' | 'lease_lost';

/** Another process holds the fill's lease now: this one stops writing and leaves the fill's files alone. */
class LeaseLostError extends OciError {
  constructor(digest: ParsedDigest) {
    super('UNAVAILABLE', `another process took over the fill of ${digest.value} after this one stalled; retry the request`);
  }
}

/**
 * One blob's fetch in this process, the only one anywhere while it holds the lease `fill:<digest>`.
 * Bytes go to fixed-size chunks in storage (any process reads a chunk once it is committed); the chunk
 * being filled stays in `buffer` so followers in this process get bytes as they arrive. Only when the
 * whole blob hashes to its digest are the chunks composed at the blob's key.
 */
export class Fill {
  /** Bytes of the blob this fill holds: committed chunks, then `buffer` up to here. */
  received = 0;
  /** Chunks 0 .. committedChunks-1 are committed in storage. */
  committedChunks = 0;
  /** The chunk being filled: blob bytes from `bufferStart`, valid up to `received`. */
  buffer: Buffer | undefined;
  get bufferStart(): number {
    return this.committedChunks * this.chunkBytes;
  }
  size: number | undefined;
  error: Error | undefined;
  /** The blob is committed at its key. */
  done = false;
  /** Bytes this fill read from its source, including those a resumed fill skips. */
  fetchedBytes = 0;

  private readonly sizeKnown = deferred<number>();
  private readonly commit = deferred<void>();
  private wake = deferred<void>();
  private leaseLost = false;
  private readonly controller = new AbortController();

  constructor(
    private readonly ctx: FillContext,
    readonly digest: ParsedDigest,
    readonly attempt: string,
    readonly chunkBytes: number,
    /** A resumed fill knows its size from the record; a fresh one from the source. */
    private readonly expectedSize: number | undefined,
    private readonly resumed: boolean,
  ) {}

  /** The blob's size, once known; rejects if the fill fails before. */
  get sized(): Promise<number> {
    return this.sizeKnown.promise;
  }

  /** How the fill ended; meaningful once `run` has returned. */
  get outcome(): FillOutcome {
    if (this.done) return 'committed';
    return this.leaseLost ? 'lease_lost' : 'failed';
  }

  /** Resolves once the blob is committed at its key; rejects with the fill's failure. */
  get committed(): Promise<void> {
    return this.commit.promise;
  }

  /** Resolves at the next change (bytes, a chunk committed, done, failed). */
  changed(): Promise<void> {
    return this.wake.promise;
  }

  private notify(): void {
    const woken = this.wake;
    this.wake = deferred();
    woken.resolve();
  }

  /** Runs the fill to its end; never throws (the outcome is in `error`/`done` and the promises). */
  async run(open: OpenFillSource): Promise<void> {
    const controller = this.controller;
    const lease = fillLeaseName(this.digest);
    const renewal = setInterval(() => {
      this.ctx.metadata.acquireLease(lease, this.ctx.holder, this.ctx.leaseMs).then(
        (held) => {
          if (!held) this.loseLease();
        },
        // A store that fails a renewal may answer the next; if the lease lapses meanwhile, the next
        // renewal (or the check before a chunk) says so.
        () => undefined,
      );
    }, this.ctx.leaseMs / 3);
    renewal.unref();
    let release: (() => void) | undefined;
    let source: Readable | undefined;
    try {
      const hash = newHash(this.digest.algorithm);
      if (this.resumed && this.expectedSize !== undefined) {
        this.setSize(this.expectedSize);
        release = this.ctx.reserve(this.expectedSize);
        await this.rehashCommittedChunks(hash);
      } else {
        // Leftovers of dead attempts go: this process holds the lease, nothing else writes here.
        // Known from the caller: refused before the source is asked for anything.
        if (this.expectedSize !== undefined) release = this.ctx.reserve(this.expectedSize);
        await this.ctx.driver.delete(fillDir(this.digest));
        await this.saveState({ status: 'filling' });
      }
      if (this.size === undefined || this.received < this.size) {
        const opened = await open(controller.signal);
        source = opened.stream;
        const size = this.checkSourceSize(opened.size);
        if (this.size === undefined) {
          this.setSize(size);
          release ??= this.ctx.reserve(size);
          await this.saveState({ status: 'filling', size });
        }
        await this.consume(opened.stream, hash, controller.signal);
      }
      const size = this.size as number;
      if (this.received !== size) {
        throw new OciError('UNAVAILABLE', `the source of ${this.digest.value} ended after ${this.received} of its ${size} bytes; retry the request`);
      }
      const actual = `${this.digest.algorithm}:${hash.digest('hex')}`;
      if (actual !== this.digest.value) {
        throw new OciError('UNAVAILABLE', `the source sent content with digest ${actual} for ${this.digest.value}; nothing was stored, retry the request`);
      }
      await this.assertLease();
      const parts = Array.from({ length: this.committedChunks }, (_, i) => fillChunkKey(this.digest, this.attempt, i));
      await composeParts(this.ctx.driver, parts, blobKey(this.digest), controller.signal);
      this.done = true;
      this.notify();
      this.commit.resolve();
      await this.ctx.driver.delete(fillDir(this.digest)).catch(() => undefined);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.fail(controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason : error);
      if (!controller.signal.aborted) controller.abort(this.error);
      source?.destroy();
      // Only while this process still holds the lease: a successor's fill of the same attempt is not ours to fail.
      if (!this.leaseLost && (await this.stillHeld())) await this.recordFailure(this.error as Error);
    } finally {
      clearInterval(renewal);
      release?.();
      if (!this.leaseLost) await this.ctx.metadata.releaseLease(lease, this.ctx.holder).catch(() => undefined);
    }
  }

  private setSize(size: number): void {
    this.size = size;
    this.sizeKnown.resolve(size);
    this.notify();
  }

  private checkSourceSize(size: number): number {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new OciError('UNAVAILABLE', `the source of ${this.digest.value} declared no usable size (${String(size)}); retry the request`);
    }
    const expected = this.size ?? this.expectedSize;
    if (expected !== undefined && size !== expected) {
      throw new OciError('UNAVAILABLE', `the source of ${this.digest.value} declared ${size} bytes, not the expected ${expected}; nothing was stored`);
    }
    return size;
  }

  private fail(error: Error): void {
    if (this.error) return;
    this.error = error;
    this.sizeKnown.reject(error);
    this.commit.reject(error);
    this.notify();
  }

  private loseLease(): void {
    this.leaseLost = true;
    this.controller.abort(new LeaseLostError(this.digest));
  }

  /** Checked before anything is committed, so a stalled holder whose lease lapsed never writes over its successor. */
  private async assertLease(): Promise<void> {
    if (!this.leaseLost && !(await this.ctx.metadata.acquireLease(fillLeaseName(this.digest), this.ctx.holder, this.ctx.leaseMs))) this.loseLease();
    if (this.leaseLost) throw this.controller.signal.reason as Error;
  }

  private async stillHeld(): Promise<boolean> {
    return this.ctx.metadata.acquireLease(fillLeaseName(this.digest), this.ctx.holder, this.ctx.leaseMs).catch(() => false);
  }

  private async saveState(state: Omit<FillState, 'attempt' | 'chunkBytes'>): Promise<void> {
    await writeFillState(this.ctx.driver, this.digest, { attempt: this.attempt, chunkBytes: this.chunkBytes, size: this.size, ...state });
  }

  /** Followers in other processes learn of the failure from the record; the chunks go. */
  private async recordFailure(error: Error): Promise<void> {
    await this.saveState({ status: 'failed', error: error.message }).catch(() => undefined);
    await this.ctx.driver.delete(`${fillDir(this.digest)}/${this.attempt}`).catch(() => undefined);
  }

  /**
   * A fill resumed after its holder died: the chunks it committed are read back into the hash (the
   * hash must cover the bytes that will be composed, not what this source sends), and the source's
   * first bytes up to there are skipped.
   */
  private async rehashCommittedChunks(hash: Hash): Promise<void> {
    const size = this.size as number;
    const chunks = Math.ceil(size / this.chunkBytes);
    for (let index = 0; index < chunks; index++) {
      const expected = Math.min(this.chunkBytes, size - index * this.chunkBytes);
      const key = fillChunkKey(this.digest, this.attempt, index);
      let stored: Readable;
      try {
        if ((await this.ctx.driver.stat(key)).size !== expected) break;
        stored = await this.ctx.driver.reader(key);
      } catch (err) {
        if (err instanceof BlobNotFoundError) break;
        throw err;
      }
      for await (const piece of stored) hash.update(piece as Buffer);
      this.committedChunks = index + 1;
      this.received = this.bufferStart;
      this.notify();
    }
  }

  private async consume(stream: Readable, hash: Hash, signal: AbortSignal): Promise<void> {
    const size = this.size as number;
    let skip = this.received;
    const idleMs = this.ctx.sourceIdleMs;
    const idle = setTimeout(() => {
      stream.destroy(new OciError('UNAVAILABLE', `the source of ${this.digest.value} sent nothing for ${idleMs / 1000} s; retry the request`));
    }, idleMs);
    idle.unref();
    const onAbort = (): void => {
      stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('fill aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const raw of stream) {
        idle.refresh();
        let piece = Buffer.isBuffer(raw) ? raw : Buffer.from(raw as Uint8Array);
        this.fetchedBytes += piece.length;
        if (skip > 0) {
          const skipped = Math.min(skip, piece.length);
          skip -= skipped;
          piece = piece.subarray(skipped);
          if (piece.length === 0) continue;
        }
        if (this.received + piece.length > size) {
          throw new OciError('UNAVAILABLE', `the source of ${this.digest.value} sent more than its declared ${size} bytes; nothing was stored`);
        }
        hash.update(piece);
        await this.append(piece, signal);
      }
    } catch (err) {
      // The source's own errors (a reset, a silent upstream) reach every follower: as 503, not 500.
      if (err instanceof OciError || signal.aborted) throw err;
      throw new OciError(
        'UNAVAILABLE',
        `the source of ${this.digest.value} broke off after ${this.received} bytes: ${err instanceof Error ? err.message : String(err)}; retry the request`,
      );
    } finally {
      clearTimeout(idle);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async append(piece: Buffer, signal: AbortSignal): Promise<void> {
    const size = this.size as number;
    let offset = 0;
    while (offset < piece.length) {
      this.buffer ??= Buffer.allocUnsafe(Math.min(this.chunkBytes, size - this.bufferStart));
      const filled = this.received - this.bufferStart;
      const take = Math.min(piece.length - offset, this.buffer.length - filled);
      piece.copy(this.buffer, filled, offset, offset + take);
      offset += take;
      this.received += take;
      this.notify();
      if (filled + take === this.buffer.length) await this.storeChunk(this.buffer, signal);
    }
  }

  private async storeChunk(chunk: Buffer, signal: AbortSignal): Promise<void> {
    await this.assertLease();
    const writer = await this.ctx.driver.writer(fillChunkKey(this.digest, this.attempt, this.committedChunks), { signal });
    let committed = false;
    try {
      await writer.write(Readable.from([chunk], { objectMode: false }), signal);
      await writer.commit();
      committed = true;
    } finally {
      if (!committed) await writer.cancel().catch(() => undefined);
    }
    this.committedChunks++;
    this.buffer = undefined;
    this.notify();
  }
}
