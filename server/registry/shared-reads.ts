// One storage read per hot blob per process: concurrent full GETs of the same digest share one driver
// read, spooled to a local file that every client reads at its own pace. See docs/storage-s3.md.
import { randomUUID } from 'node:crypto';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';

export interface SharedReadsOptions {
  /** Where spool files live while a read is shared (created if absent). */
  spoolDir: string;
  /** Spool bytes all shared reads may hold at once; a read that does not fit is not shared. */
  maxSpoolBytes: number;
  /** A client behind the window reads the spool file in pieces of this size. */
  chunkBytes?: number;
  /** The latest bytes of each read kept in memory for clients a little behind the source. */
  windowBytes?: number;
  /** A client joined a read already in flight (metrics). */
  onJoin?: () => void;
  log?: { warn(details: object, message: string): void };
}

const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const DEFAULT_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * Concurrent reads of one object, shared. The first client opens the source; its bytes go to a spool
 * file as they arrive, and each client (the first, those that joined on the way, those that come while
 * others still read) is a reader with its own position: a client near the live edge gets the chunks
 * from a window of the latest bytes in memory (one per read, shared), one that fell further behind
 * reads the file, so a slow client stalls no one and memory stays at one window per read. Reading the
 * file goes through libuv's small thread pool, which a few hundred clients would queue on. The source is the integrity-guarded stream, which holds
 * its last chunk back until the digest checked out: the spool never holds a complete bad object, and
 * a failed source cuts every client at once.
 */
export class SharedReads {
  private readonly flights = new Map<string, Flight>();
  private spooled = 0;
  private closed = false;

  constructor(private readonly options: SharedReadsOptions) {}

  /**
   * A stream of `size` bytes of `key` from the read in flight for it, starting one with `openSource`
   * (given a signal that aborts when every client has left) if there is none. Undefined when the read
   * cannot be shared (spool full or not writable): the caller reads alone. Throws what opening the
   * source threw, to every client that was waiting for it.
   */
  async open(key: string, size: number, openSource: (signal: AbortSignal) => Promise<Readable>, signal: AbortSignal): Promise<Readable | undefined> {
    if (this.closed) return undefined;
    let flight = this.flights.get(key);
    if (flight && flight.size === size) {
      this.options.onJoin?.();
    } else {
      if (this.spooled + size > this.options.maxSpoolBytes) return undefined;
      const path = join(this.options.spoolDir, `${process.pid}-${randomUUID()}.spool`);
      const sizes = { chunkBytes: this.options.chunkBytes ?? DEFAULT_CHUNK_BYTES, windowBytes: this.options.windowBytes ?? DEFAULT_WINDOW_BYTES };
      flight = new Flight(key, size, path, sizes, {
        finished: (f) => this.finished(f),
        released: (f) => {
          this.spooled -= f.size;
        },
      });
      this.flights.set(key, flight);
      this.spooled += size;
      flight.start(this.options.spoolDir, openSource, this.options.log);
    }
    // Attached before waiting: the flight must not see itself abandoned while this client waits.
    const reader = flight.attach();
    const onAbort = () => reader.destroy();
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    reader.once('close', () => signal.removeEventListener('abort', onAbort));
    try {
      const usable = await flight.ready;
      if (!usable) {
        reader.destroy();
        return undefined;
      }
    } catch (err) {
      reader.destroy();
      throw err;
    }
    // It failed between opening and this client starting: answered as an error, before any header.
    if (flight.error) {
      reader.destroy();
      throw flight.error;
    }
    return reader;
  }

  /** Reads currently shared (tests, metrics). */
  get inFlight(): number {
    return this.flights.size;
  }

  /** Cuts every shared read and removes their spool files. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.flights.values()].map((f) => f.cancel()));
  }

  /** The source ended (cleanly or not) or every client left: no one new joins. */
  private finished(flight: Flight): void {
    if (this.flights.get(flight.key) === flight) this.flights.delete(flight.key);
  }
}

/** One read of one object, spooled, and the clients reading it. */
class Flight {
  readonly ready: Promise<boolean>;
  written = 0;
  done = false;
  error: Error | undefined;
  file: FileHandle | undefined;
  private readonly readers = new Set<SpoolReader>();
  private readonly abort = new AbortController();
  private settle!: (usable: boolean) => void;
  private fail!: (err: unknown) => void;
  private removed = false;
  private pump: Promise<void> = Promise.resolve();
  /** The latest chunks, in order, and where the first of them starts. */
  private readonly window: Buffer[] = [];
  private windowStart = 0;
  private windowBytes = 0;

  constructor(
    readonly key: string,
    readonly size: number,
    private readonly path: string,
    readonly sizes: { chunkBytes: number; windowBytes: number },
    private readonly hooks: { finished(flight: Flight): void; released(flight: Flight): void },
  ) {
    this.ready = new Promise<boolean>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    // Every waiter handles it; this keeps a failure nobody waits for from being "unhandled".
    this.ready.catch(() => undefined);
  }

  start(dir: string, openSource: (signal: AbortSignal) => Promise<Readable>, log: SharedReadsOptions['log']): void {
    this.pump = this.run(dir, openSource, log);
  }

  attach(): SpoolReader {
    const reader = new SpoolReader(this, (r) => this.detach(r));
    this.readers.add(reader);
    return reader;
  }

  /** Every client cut, the source stopped, the spool removed (shutdown). */
  async cancel(): Promise<void> {
    this.abort.abort();
    for (const reader of this.readers) reader.destroy(new Error('registry shutting down'));
    await this.pump;
    await this.cleanup();
  }

  private async run(dir: string, openSource: (signal: AbortSignal) => Promise<Readable>, log: SharedReadsOptions['log']): Promise<void> {
    try {
      await mkdir(dir, { recursive: true });
      this.file = await open(this.path, 'wx+');
    } catch (err) {
      // No spool, no sharing: every waiting client reads on its own instead.
      log?.warn({ err, dir }, 'cannot create a spool file for a shared blob read; reading without sharing');
      this.hooks.finished(this);
      this.settle(false);
      await this.cleanup();
      return;
    }
    let source: Readable;
    try {
      source = await openSource(this.abort.signal);
    } catch (err) {
      this.hooks.finished(this);
      this.error = err instanceof Error ? err : new Error(String(err));
      this.fail(err);
      await this.cleanup();
      return;
    }
    this.settle(true);
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        // Every client left: a source that ignores the signal is stopped here.
        if (this.abort.signal.aborted) {
          source.destroy();
          throw new Error('shared read abandoned by every client');
        }
        const offset = this.written;
        let at = 0;
        while (at < chunk.length) {
          const { bytesWritten } = await this.file.write(chunk, at, chunk.length - at, offset + at);
          at += bytesWritten;
        }
        this.written += chunk.length;
        this.keep(chunk);
        for (const reader of this.readers) reader.arrived(chunk, offset);
      }
      this.done = true;
      for (const reader of this.readers) reader.wake();
    } catch (err) {
      this.error = err instanceof Error ? err : new Error(String(err));
      this.hooks.finished(this);
      for (const reader of this.readers) reader.destroy(this.error);
    }
    // A finished read stays joinable while clients still read its spool (the bytes checked out).
    if (this.readers.size === 0) {
      this.hooks.finished(this);
      await this.cleanup();
    }
  }

  /** The bytes at `position` if the window still holds them (up to the end of their chunk). */
  fromWindow(position: number): Buffer | undefined {
    if (position < this.windowStart) return undefined;
    let at = this.windowStart;
    for (const chunk of this.window) {
      if (position < at + chunk.length) return chunk.subarray(position - at);
      at += chunk.length;
    }
    return undefined;
  }

  private keep(chunk: Buffer): void {
    this.window.push(chunk);
    this.windowBytes += chunk.length;
    while (this.windowBytes - (this.window[0]?.length ?? 0) >= this.sizes.windowBytes) {
      const dropped = this.window.shift();
      if (!dropped) break;
      this.windowBytes -= dropped.length;
      this.windowStart += dropped.length;
    }
  }

  private detach(reader: SpoolReader): void {
    this.readers.delete(reader);
    if (this.readers.size > 0) return;
    this.hooks.finished(this);
    // Nobody left to send to: stop reading storage. The pump cleans up once the source has stopped.
    if (!this.done && !this.error) {
      this.abort.abort();
      return;
    }
    void this.cleanup();
  }

  private async cleanup(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    const file = this.file;
    this.file = undefined;
    await file?.close().catch(() => undefined);
    await rm(this.path, { force: true }).catch(() => undefined);
    this.hooks.released(this);
  }
}

/** One client's view of a flight: the spool from its own position, then the live chunks. */
class SpoolReader extends Readable {
  private position = 0;
  private waiting = false;
  private filling = false;

  constructor(
    private readonly flight: Flight,
    private readonly onClose: (reader: SpoolReader) => void,
  ) {
    super({ highWaterMark: flight.sizes.chunkBytes });
  }

  override _read(): void {
    if (!this.filling) void this.fill();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.waiting = false;
    this.onClose(this);
    callback(err);
  }

  /** A chunk the source produced, written at `offset`: pushed from memory to a client waiting for it. */
  arrived(chunk: Buffer, offset: number): void {
    if (!this.waiting || this.destroyed) return;
    this.waiting = false;
    if (offset === this.position) {
      this.position += chunk.length;
      if (this.push(chunk)) void this.fill();
      return;
    }
    void this.fill();
  }

  /** The source ended: a waiting client finishes. */
  wake(): void {
    if (!this.waiting || this.destroyed) return;
    this.waiting = false;
    void this.fill();
  }

  private async fill(): Promise<void> {
    this.filling = true;
    try {
      for (;;) {
        if (this.destroyed) return;
        const { flight } = this;
        if (flight.error) {
          this.destroy(flight.error);
          return;
        }
        if (this.position < flight.written) {
          const recent = flight.fromWindow(this.position);
          if (recent) {
            this.position += recent.length;
            if (!this.push(recent)) return;
            continue;
          }
          const file = flight.file;
          if (!file) {
            this.destroy(new Error('spool file closed while being read'));
            return;
          }
          const length = Math.min(flight.sizes.chunkBytes, flight.written - this.position);
          const buffer = Buffer.allocUnsafe(length);
          const { bytesRead } = await file.read(buffer, 0, length, this.position);
          if (this.destroyed) return;
          if (bytesRead === 0) {
            this.destroy(new Error('spool file shorter than written'));
            return;
          }
          this.position += bytesRead;
          if (!this.push(buffer.subarray(0, bytesRead))) return;
          continue;
        }
        if (flight.done) {
          this.push(null);
          return;
        }
        this.waiting = true;
        return;
      }
    } catch (err) {
      this.destroy(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.filling = false;
    }
  }
}
