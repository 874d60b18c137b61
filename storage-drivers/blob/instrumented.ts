// One wrapper for every blob driver: checks keys before the backend sees them, times each operation
// for metrics, and turns unexpected backend failures into StorageUnavailableError (503).
import type { Readable } from 'node:stream';
import {
  assertValidKey,
  BlobDriverError,
  StorageUnavailableError,
  type BlobDriver,
  type BlobSender,
  type BlobInfo,
  type BlobWriter,
  type DeleteManyResult,
  type PutOptions,
  type ReadOptions,
  type WriterCheckpoint,
  type WriterOptions,
} from './types.js';

export interface BlobOperation {
  /** The wrapped driver's name. */
  driver: string;
  /** `stat`, `reader`, `put`, `get`, `writer`, `move`, `delete`, `deleteMany`, `list`, `ping`, `close`, `redirectUrl`, `sweep`, `compose`, `inProgressSize`, or `writer.write` / `writer.close` / `writer.commit` / `writer.cancel`. */
  op: string;
  seconds: number;
  /** Class name of the error the caller saw (after mapping), when the operation failed. */
  error?: string;
  /** Bytes appended, for `writer.write` (also set when an aborted write kept some). */
  bytes?: number;
}

export type BlobObserver = (operation: BlobOperation) => void;

/**
 * Wraps `driver`. `reader` is timed until the stream is returned (time to open), `list` until
 * iteration ends; errors raised later by a returned stream are passed through unchanged.
 */
export function instrument(driver: BlobDriver, observe: BlobObserver): BlobDriver {
  return new InstrumentedDriver(driver, observe);
}

class InstrumentedDriver implements BlobDriver {
  readonly name: string;
  readonly redirectUrl?: (key: string) => Promise<string | undefined>;
  readonly sweep?: (olderThan: Date, isLive: (key: string) => Promise<boolean>) => Promise<number>;
  readonly openSender?: (key: string, options?: ReadOptions) => Promise<BlobSender>;
  readonly compose?: (parts: string[], to: string) => Promise<void>;
  readonly inProgressSize?: (key: string) => Promise<number | undefined>;

  constructor(
    private readonly inner: BlobDriver,
    private readonly observe: BlobObserver,
  ) {
    this.name = inner.name;
    const redirect = inner.redirectUrl?.bind(inner);
    if (redirect) this.redirectUrl = (key) => this.run('redirectUrl', [key], () => redirect(key));
    const sweep = inner.sweep?.bind(inner);
    if (sweep) this.sweep = (olderThan, isLive) => this.run('sweep', [], () => sweep(olderThan, isLive));
    const compose = inner.compose?.bind(inner);
    if (compose) this.compose = (parts, to) => this.run('compose', [...parts, to], () => compose(parts, to));
    const openSender = inner.openSender?.bind(inner);
    if (openSender) this.openSender = (key, options) => this.run('openSender', [key], () => openSender(key, options));
    const inProgressSize = inner.inProgressSize?.bind(inner);
    if (inProgressSize) this.inProgressSize = (key) => this.run('inProgressSize', [key], () => inProgressSize(key));
  }

  stat(key: string): Promise<BlobInfo> {
    return this.run('stat', [key], () => this.inner.stat(key));
  }

  reader(key: string, options?: ReadOptions): Promise<Readable> {
    return this.run('reader', [key], () => this.inner.reader(key, options));
  }

  put(key: string, data: Buffer, options?: PutOptions): Promise<void> {
    return this.run('put', [key], () => this.inner.put(key, data, options));
  }

  get(key: string): Promise<Buffer> {
    return this.run('get', [key], () => this.inner.get(key));
  }

  async writer(key: string, options: WriterOptions): Promise<BlobWriter> {
    const writer = await this.run('writer', [key], () => this.inner.writer(key, options));
    return new InstrumentedWriter(writer, (op, fn, bytes, isForeign) => this.run(op, [], fn, bytes, isForeign));
  }

  move(from: string, to: string): Promise<void> {
    return this.run('move', [from, to], () => this.inner.move(from, to));
  }

  delete(key: string): Promise<void> {
    return this.run('delete', [key], () => this.inner.delete(key));
  }

  /** Per-key failures are mapped like thrown errors, so callers see the same typed errors either way. */
  deleteMany(keys: string[]): Promise<DeleteManyResult> {
    return this.run('deleteMany', keys, async () => {
      const { deleted, failed } = await this.inner.deleteMany(keys);
      return { deleted, failed: failed.map(({ key, error }) => ({ key, error: this.normalize(error, 'deleteMany') })) };
    });
  }

  async *list(prefix: string): AsyncIterable<string> {
    const started = performance.now();
    let error: unknown;
    try {
      assertValidKey(prefix);
      for await (const key of this.inner.list(prefix)) yield key;
    } catch (err) {
      error = this.normalize(err, 'list');
      throw error;
    } finally {
      // Also reached when the consumer stops early (return() on the generator).
      this.report('list', started, error);
    }
  }

  ping(): Promise<void> {
    return this.run('ping', [], () => this.inner.ping());
  }

  close(): Promise<void> {
    return this.run('close', [], () => this.inner.close());
  }

  private async run<T>(op: string, keys: string[], fn: () => Promise<T>, bytes?: () => number, isForeign?: (err: unknown) => boolean): Promise<T> {
    const started = performance.now();
    try {
      for (const key of keys) assertValidKey(key);
      const result = await fn();
      this.report(op, started, undefined, bytes?.());
      return result;
    } catch (err) {
      const mapped = isForeign?.(err) ? err : this.normalize(err, op);
      this.report(op, started, mapped, bytes?.());
      throw mapped;
    }
  }

  private normalize(err: unknown, op: string): Error {
    if (err instanceof BlobDriverError || isAbort(err)) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new StorageUnavailableError(`${this.name} ${op} failed: ${message}`, { cause: err });
  }

  private report(op: string, started: number, error: unknown, bytes?: number): void {
    const operation: BlobOperation = { driver: this.name, op, seconds: (performance.now() - started) / 1000 };
    if (error !== undefined) operation.error = error instanceof Error ? error.name : typeof error;
    if (bytes !== undefined) operation.bytes = bytes;
    try {
      this.observe(operation);
    } catch {
      // A broken metrics hook must never fail a storage operation.
    }
  }
}

type Runner = <T>(op: string, fn: () => Promise<T>, bytes?: () => number, isForeign?: (err: unknown) => boolean) => Promise<T>;

class InstrumentedWriter implements BlobWriter {
  constructor(
    private readonly inner: BlobWriter,
    private readonly run: Runner,
  ) {}

  get size(): number {
    return this.inner.size;
  }

  write(src: Readable, signal?: AbortSignal): Promise<number> {
    const before = this.inner.size;
    return this.run(
      'writer.write',
      () => this.inner.write(src, signal),
      () => this.inner.size - before,
      // The source failing (a client that went away) is the caller's problem, not the backend's.
      (err) => err === src.errored,
    );
  }

  close(): Promise<WriterCheckpoint> {
    return this.run('writer.close', () => this.inner.close());
  }

  commit(): Promise<void> {
    return this.run('writer.commit', () => this.inner.commit());
  }

  cancel(): Promise<void> {
    return this.run('writer.cancel', () => this.inner.cancel());
  }
}

function isAbort(err: unknown): err is Error {
  return err instanceof Error && err.name === 'AbortError';
}
