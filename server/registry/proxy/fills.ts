import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlobNotFoundError, type BlobDriver } from '../../../storage-drivers/blob/types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { OciError } from '../../errors.js';
import type { SharedReads } from '../shared-reads.js';
import { blobKey, fillChunkKey, fillDirOfKey, FILLS_ROOT } from '../keys.js';
import type { DigestAlgorithm, ParsedDigest } from '../references.js';
import { FillReads, type Span } from './fill-reads.js';
import { deferred, Fill, fillLeaseName, type FillContext, type FillOutcome, type OpenFillSource } from './fill-run.js';
import { readFillState, type FillState } from './fill-state.js';

export type { FillSource, OpenFillSource } from './fill-run.js';

const MiB = 1024 * 1024;

/**
 * The last bytes of a blob a follower sends only once the blob is committed (so verified): a corrupt
 * or failed fetch cuts every response short instead of letting one end cleanly.
 */
const TAIL_BYTES = 64 * 1024;

export interface BlobFillsOptions {
  /** Spool chunk size; ≥ 5 MiB so S3 can compose the chunks with UploadPartCopy. Default 8 MiB. */
  chunkBytes?: number;
  /** The fill lease's term, renewed every third of it; a dead filler is taken over after it. Default 15 s. */
  leaseMs?: number;
  /**
   * The most bytes this process's fills in flight may spool together. A fill that would go past it
   * fails at once with 503 (no queue: the client's retry finds the blob filled, or room). Default: no bound.
   */
  maxFillBytes?: number;
  /** A follower that sees no progress for this long fails with 503. Default 60 s. */
  stallMs?: number;
  /** A source that sends nothing for this long fails the fill. Default 60 s. */
  sourceIdleMs?: number;
  /** Bounds of the backoff with which followers poll storage for another process's chunks. */
  pollMs?: { min: number; max: number };
  /** This process's name in fill leases. Default: a random one. */
  holder?: string;
  /**
   * The app's shared reads (storage.sharedReads): followers here reading the same committed chunk, or
   * the committed blob's tail, share one storage read of it. Without them each follower reads alone.
   */
  sharedReads?: SharedReads | undefined;
  /** Told of fills starting and ending, requests served and spool changes (metrics); must not throw. */
  observer?: FillObserver | undefined;
}

/** How a request for a blob was served: it started the fill, joined one here or in another process, or found it stored. */
export type FillServedFrom = 'started' | 'local' | 'remote' | 'storage';

export type FillEvent =
  /** A fill began in this process: 'fresh', or 'resumed' from a dead holder's committed chunks. */
  | { kind: 'started'; how: 'fresh' | 'resumed' }
  /** A fill of this process ended; `fetchedBytes` came from its source. */
  | { kind: 'finished'; outcome: FillOutcome; fetchedBytes: number }
  | { kind: 'served'; from: FillServedFrom }
  /** Bytes counted against maxFillBytes went up (positive) or down. */
  | { kind: 'spool'; deltaBytes: number };

export type FillObserver = (event: FillEvent) => void;

/** What `serve` hands the route: the whole blob's bytes, as they arrive. */
export interface ServedBlob {
  size: number;
  /** The full blob; errors (never ends) if the fill fails or its bytes do not verify. */
  stream: Readable;
  /** 'storage': the blob was committed already; 'fill': fed from a fill (this process's or another's). */
  from: 'storage' | 'fill';
  /**
   * Resolves once the blob is committed at its key (the caller links it into the repository then);
   * rejects with the fill's failure. For a follower of another process's fill it settles when the
   * follower's stream reaches the end.
   */
  whenCommitted: Promise<void>;
}

/**
 * Single-flight blob fills across processes that share storage and metadata: the first miss of a blob
 * opens its source once (holding the metadata lease `fill:<digest>`), and every request for the blob
 * while that fetch runs, here or in another process, is fed from it. See docs/pull-through-fills.md.
 */
export class BlobFills {
  private readonly active = new Map<string, Fill>();
  private readonly polls = new Map<string, Promise<'chunk' | 'committed' | Fill>>();
  private inFlightBytes = 0;
  private readonly chunkBytes: number;
  private readonly leaseMs: number;
  private readonly maxFillBytes: number;
  private readonly stallMs: number;
  private readonly pollMs: { min: number; max: number };
  private readonly ctx: FillContext;
  private readonly observer: FillObserver;
  private readonly reads: FillReads;

  constructor(
    private readonly driver: BlobDriver,
    private readonly metadata: MetadataStore,
    options: BlobFillsOptions = {},
  ) {
    this.chunkBytes = options.chunkBytes ?? 8 * MiB;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.maxFillBytes = options.maxFillBytes ?? Number.POSITIVE_INFINITY;
    this.stallMs = options.stallMs ?? 60_000;
    this.pollMs = options.pollMs ?? { min: 10, max: 250 };
    this.reads = new FillReads(driver, options.sharedReads);
    const observer = options.observer;
    this.observer = observer
      ? (event) => {
          try {
            observer(event);
          } catch {
            // Metrics never fail a fill.
          }
        }
      : () => undefined;
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes < 1) throw new Error(`chunkBytes must be a positive integer, not ${this.chunkBytes}`);
    this.ctx = {
      driver,
      metadata,
      holder: options.holder ?? `fills-${randomUUID()}`,
      leaseMs: this.leaseMs,
      sourceIdleMs: options.sourceIdleMs ?? 60_000,
      reserve: (size) => this.reserve(size),
    };
  }

  /** Fills running in this process. */
  get running(): number {
    return this.active.size;
  }

  /** Bytes the fills of this process in flight spool (counted against maxFillBytes). */
  get spooling(): number {
    return this.inFlightBytes;
  }

  /**
   * The blob `digest` (of `expectedSize` bytes when the caller knows it), from storage when it is
   * committed, else from the one fill of it: this call starts it (calling `open` once) unless a fill
   * runs already in some process, and then it joins that one.
   */
  async serve(digest: ParsedDigest, expectedSize: number | undefined, open: OpenFillSource): Promise<ServedBlob> {
    const deadline = Date.now() + this.stallMs;
    let wait = this.pollMs.min;
    for (;;) {
      const local = this.active.get(digest.value);
      if (local) return this.followLocal(local, expectedSize, open, 'local');
      const stored = await this.storedSize(digest);
      if (stored !== undefined) return this.fromStorage(digest, stored, expectedSize);
      const started = await this.startIfFree(digest, expectedSize, open);
      if (started === 'retry') continue;
      if (started) return this.followLocal(started, expectedSize, open, 'started');
      const state = await readFillState(this.driver, digest);
      if (state?.status === 'filling' && state.size !== undefined) {
        assertSize(digest, state.size, expectedSize);
        this.observer({ kind: 'served', from: 'remote' });
        return this.served(digest, state, state.size, undefined, open);
      }
      if (Date.now() > deadline) throw stalled(digest, this.stallMs);
      await sleep(wait);
      wait = Math.min(wait * 2, this.pollMs.max);
    }
  }

  /**
   * Removes what dead fills left under `fills/` (a process killed mid-fill) when nothing was written
   * there since `olderThan` and no process holds the fill's lease. Returns how many fills went.
   */
  async sweepFills(olderThan: Date): Promise<number> {
    const dirs = new Map<string, string[]>();
    for await (const key of this.driver.list(FILLS_ROOT)) {
      const dir = fillDirOfKey(key);
      if (dir) dirs.set(dir, [...(dirs.get(dir) ?? []), key]);
    }
    let removed = 0;
    for (const [dir, keys] of dirs) {
      const [, algorithm, hex] = dir.split('/') as [string, DigestAlgorithm, string];
      const digest: ParsedDigest = { algorithm, hex, value: `${algorithm}:${hex}` };
      if (this.active.has(digest.value) || !(await this.untouchedSince(keys, olderThan))) continue;
      if (!(await this.metadata.acquireLease(fillLeaseName(digest), this.ctx.holder, this.leaseMs))) continue;
      try {
        await this.driver.delete(dir);
        removed++;
      } finally {
        if (!this.active.has(digest.value)) await this.metadata.releaseLease(fillLeaseName(digest), this.ctx.holder);
      }
    }
    return removed;
  }

  private async untouchedSince(keys: string[], olderThan: Date): Promise<boolean> {
    for (const key of keys) {
      try {
        if ((await this.driver.stat(key)).modifiedAt >= olderThan) return false;
      } catch (err) {
        if (!(err instanceof BlobNotFoundError)) throw err;
      }
    }
    return true;
  }

  /**
   * Takes the lease if no process holds it and starts a fill: a fresh one, or the dead holder's
   * resumed from its committed chunks. 'retry': the blob turned up, or a fill started here meanwhile.
   */
  private async startIfFree(digest: ParsedDigest, expectedSize: number | undefined, open: OpenFillSource): Promise<Fill | 'retry' | undefined> {
    if (!(await this.metadata.acquireLease(fillLeaseName(digest), this.ctx.holder, this.leaseMs))) return undefined;
    if (this.active.has(digest.value)) return 'retry';
    if ((await this.storedSize(digest)) !== undefined) {
      await this.metadata.releaseLease(fillLeaseName(digest), this.ctx.holder);
      return 'retry';
    }
    const state = await readFillState(this.driver, digest);
    if (this.active.has(digest.value)) return 'retry';
    const resumable = state?.status === 'filling' && state.size !== undefined && state.chunkBytes === this.chunkBytes;
    return this.start(digest, resumable ? state : undefined, expectedSize, open);
  }

  private start(digest: ParsedDigest, resume: FillState | undefined, expectedSize: number | undefined, open: OpenFillSource): Fill {
    const fill = resume
      ? new Fill(this.ctx, digest, resume.attempt, resume.chunkBytes, resume.size, true)
      : new Fill(this.ctx, digest, randomUUID(), this.chunkBytes, expectedSize, false);
    this.active.set(digest.value, fill);
    this.observer({ kind: 'started', how: resume ? 'resumed' : 'fresh' });
    void fill.run(open).finally(() => {
      if (this.active.get(digest.value) === fill) this.active.delete(digest.value);
      this.observer({ kind: 'finished', outcome: fill.outcome, fetchedBytes: fill.fetchedBytes });
    });
    return fill;
  }

  private reserve(size: number): () => void {
    if (this.inFlightBytes + size > this.maxFillBytes) {
      throw new OciError(
        'UNAVAILABLE',
        `fills in flight spool ${this.inFlightBytes} bytes; a blob of ${size} more would pass the bound of ${this.maxFillBytes} (maxFillBytes); retry shortly`,
      );
    }
    this.inFlightBytes += size;
    this.observer({ kind: 'spool', deltaBytes: size });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlightBytes -= size;
      this.observer({ kind: 'spool', deltaBytes: -size });
    };
  }

  private async followLocal(fill: Fill, expectedSize: number | undefined, open: OpenFillSource, from: 'started' | 'local'): Promise<ServedBlob> {
    this.observer({ kind: 'served', from });
    const size = await fill.sized;
    assertSize(fill.digest, size, expectedSize);
    return this.served(fill.digest, { attempt: fill.attempt, chunkBytes: fill.chunkBytes }, size, fill, open);
  }

  private async fromStorage(digest: ParsedDigest, size: number, expectedSize: number | undefined): Promise<ServedBlob> {
    assertSize(digest, size, expectedSize);
    this.observer({ kind: 'served', from: 'storage' });
    const whenCommitted = Promise.resolve();
    return { size, stream: await this.driver.reader(blobKey(digest)), from: 'storage', whenCommitted };
  }

  private served(digest: ParsedDigest, of: Pick<FillState, 'attempt' | 'chunkBytes'>, size: number, fill: Fill | undefined, open: OpenFillSource): ServedBlob {
    const commit = deferred<void>();
    const follower = new Follower(this, digest, of.attempt, of.chunkBytes, size, fill, open);
    const whenCommitted = fill ? fill.committed : commit.promise;
    const stream = Readable.from(follower.bytes(commit), { objectMode: false });
    return { size, stream, from: 'fill', whenCommitted };
  }

  /** @internal for Follower */
  localFill(digest: ParsedDigest, attempt: string): Fill | undefined {
    const fill = this.active.get(digest.value);
    return fill?.attempt === attempt ? fill : undefined;
  }

  /** @internal for Follower: resumes `attempt` here when its holder died (its lease lapsed). */
  async takeOver(digest: ParsedDigest, attempt: string, open: OpenFillSource): Promise<Fill | undefined> {
    const local = this.active.get(digest.value);
    if (local) return local.attempt === attempt ? local : undefined;
    if (!(await this.metadata.acquireLease(fillLeaseName(digest), this.ctx.holder, this.leaseMs))) return undefined;
    const again = this.active.get(digest.value);
    if (again) return again.attempt === attempt ? again : undefined;
    const state = await readFillState(this.driver, digest);
    const resumable = state?.attempt === attempt && state.status === 'filling' && state.size !== undefined && (await this.storedSize(digest)) === undefined;
    // Other followers here may have started it during the awaits: one fill per process.
    if (this.active.has(digest.value)) return this.localFill(digest, attempt);
    if (!resumable || state?.size === undefined) {
      await this.metadata.releaseLease(fillLeaseName(digest), this.ctx.holder);
      return undefined;
    }
    return this.start(digest, state, state.size, open);
  }

  /** @internal for Follower */
  async storedSize(digest: ParsedDigest): Promise<number | undefined> {
    try {
      return (await this.driver.stat(blobKey(digest))).size;
    } catch (err) {
      if (err instanceof BlobNotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * @internal for Follower: bytes [from, to) of `key`, within `span` (the part of it read once for every
   * follower here reading it meanwhile), or undefined when it is not (or no longer) committed.
   */
  openRange(key: string, span: Span, from: number, to: number): Promise<AsyncIterable<Buffer> | undefined> {
    return this.reads.open(key, span, from, to);
  }

  /**
   * @internal for Follower: waits for another process's fill to commit chunk `index` (undefined: the
   * blob) or the blob; takes the fill over when its holder died; throws when it failed or was
   * abandoned. Followers here waiting for the same thing share one poll, so a hundred of them cost
   * storage what one does.
   */
  watch(digest: ParsedDigest, attempt: string, index: number | undefined, open: OpenFillSource): Promise<'chunk' | 'committed' | Fill> {
    const key = `${digest.value} ${attempt} ${index ?? 'blob'}`;
    let poll = this.polls.get(key);
    if (!poll) {
      poll = this.poll(digest, attempt, index, open).finally(() => this.polls.delete(key));
      this.polls.set(key, poll);
    }
    return poll;
  }

  private async poll(digest: ParsedDigest, attempt: string, index: number | undefined, open: OpenFillSource): Promise<'chunk' | 'committed' | Fill> {
    const deadline = Date.now() + this.stallMs;
    let wait = this.pollMs.min;
    let missing = false;
    for (;;) {
      if (index !== undefined && (await this.exists(fillChunkKey(digest, attempt, index)))) return 'chunk';
      // The record before the blob: a filler stores the blob before it removes the record.
      const state = await readFillState(this.driver, digest);
      if ((await this.storedSize(digest)) !== undefined) return 'committed';
      if (!state && !missing) {
        // A store may answer "no such key" while the record is being overwritten (s3rver does):
        // gone only if it is still gone at the next look.
        missing = true;
        await sleep(wait);
        continue;
      }
      if (!state || state.attempt !== attempt) throw abandoned(digest);
      if (state.status === 'failed') throw new OciError('UNAVAILABLE', state.error ?? `the fill of ${digest.value} failed; retry the request`);
      const fill = await this.takeOver(digest, attempt, open);
      if (fill) return fill;
      if (Date.now() > deadline) throw stalled(digest, this.stallMs);
      await sleep(wait);
      wait = Math.min(wait * 2, this.pollMs.max);
    }
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.driver.stat(key);
      return true;
    } catch (err) {
      if (err instanceof BlobNotFoundError) return false;
      throw err;
    }
  }
}

/**
 * One response's reader of a fill: bytes from the fill's memory while it runs in this process, else
 * from committed chunks (polling for the next one of another process's fill), else from the
 * committed blob; the last TAIL_BYTES only after the commit.
 */
class Follower {
  private position = 0;

  constructor(
    private readonly fills: BlobFills,
    private readonly digest: ParsedDigest,
    private readonly attempt: string,
    private readonly chunkBytes: number,
    private readonly size: number,
    private fill: Fill | undefined,
    private readonly open: OpenFillSource,
  ) {}

  async *bytes(commit: { resolve(): void; reject(err: Error): void }): AsyncGenerator<Buffer> {
    try {
      const tailStart = this.size - Math.min(this.size, TAIL_BYTES);
      while (this.position < tailStart) {
        const next = await this.next(tailStart);
        if (next === 'committed') break;
        if (next === undefined) continue;
        // Buffers are the fill's memory; an iterable is a committed chunk's range, streamed.
        for await (const piece of Buffer.isBuffer(next) ? [next] : next) {
          this.position += piece.length;
          yield piece;
        }
      }
      await this.untilCommitted();
      commit.resolve();
      if (this.position < this.size) {
        // Every follower that got here at the tail shares one read of it.
        const span = { start: Math.min(this.position, tailStart), end: this.size };
        const rest = await this.fills.openRange(blobKey(this.digest), span, this.position, this.size);
        if (!rest) throw abandoned(this.digest);
        for await (const piece of rest) yield piece;
      }
    } catch (err) {
      commit.reject(err instanceof Error ? err : new Error(String(err)));
      throw err;
    } finally {
      // A response cut by its client: whoever waits on this follower's commit is not left hanging.
      commit.reject(new Error(`the response for ${this.digest.value} ended before its fill committed`));
    }
  }

  /** The next bytes before `limit`, 'committed' when the rest can come from the blob, or undefined after a wait. */
  private async next(limit: number): Promise<Buffer | AsyncIterable<Buffer> | 'committed' | undefined> {
    this.fill ??= this.fills.localFill(this.digest, this.attempt);
    const fill = this.fill;
    const index = Math.floor(this.position / this.chunkBytes);
    if (fill) {
      if (fill.error) throw fill.error;
      if (fill.done) return 'committed';
      if (index >= fill.committedChunks) {
        if (this.position < fill.received && fill.buffer) {
          const end = Math.min(fill.received, limit);
          return fill.buffer.subarray(this.position - fill.bufferStart, end - fill.bufferStart);
        }
        await fill.changed();
        return undefined;
      }
    }
    const chunkStart = index * this.chunkBytes;
    const whole = { start: 0, end: Math.min(this.size, chunkStart + this.chunkBytes) - chunkStart };
    const chunkEnd = Math.min(chunkStart + whole.end, limit);
    const chunk = await this.fills.openRange(fillChunkKey(this.digest, this.attempt, index), whole, this.position - chunkStart, chunkEnd - chunkStart);
    if (chunk) return chunk;
    if (fill) return undefined; // composed and deleted just now: `done` says so next time
    const seen = await this.fills.watch(this.digest, this.attempt, index, this.open);
    if (seen === 'committed') return 'committed';
    if (seen !== 'chunk') this.fill = seen;
    return undefined;
  }

  private async untilCommitted(): Promise<void> {
    for (;;) {
      this.fill ??= this.fills.localFill(this.digest, this.attempt);
      if (this.fill) {
        await this.fill.committed;
        return;
      }
      const seen = await this.fills.watch(this.digest, this.attempt, undefined, this.open);
      if (seen === 'committed') return;
      if (seen !== 'chunk') this.fill = seen;
    }
  }
}

function assertSize(digest: ParsedDigest, size: number, expectedSize: number | undefined): void {
  if (expectedSize !== undefined && size !== expectedSize) {
    throw new OciError('SIZE_INVALID', `blob ${digest.value} has ${size} bytes, not the ${expectedSize} its descriptor says`);
  }
}

function stalled(digest: ParsedDigest, ms: number): OciError {
  return new OciError('UNAVAILABLE', `the fill of ${digest.value} made no progress for ${ms / 1000} s; retry the request`);
}

function abandoned(digest: ParsedDigest): OciError {
  return new OciError('UNAVAILABLE', `the fill of ${digest.value} was abandoned by the process running it; retry the request`);
}
