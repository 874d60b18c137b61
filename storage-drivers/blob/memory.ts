// Reference driver: the whole store in one process's memory. For fast tests, never for production.
import { addAbortSignal, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BlobDriverError,
  BlobNotFoundError,
  isUnder,
  InProgressLostError,
  type BlobDriver,
  type BlobInfo,
  type BlobWriter,
  type DeleteManyResult,
  type PutOptions,
  type ReadOptions,
  type WriterCheckpoint,
  type WriterOptions,
} from './types.js';
import { keeps } from './put-keep.js';
import { checkRange } from './byte-range.js';
import { combineSignals } from './signals.js';
import { deleteEach } from './delete-each.js';

interface StoredObject {
  data: Buffer;
  modifiedAt: Date;
}

interface InProgress {
  chunks: Buffer[];
  size: number;
  /** Last write, for sweep(). */
  touchedAt: number;
}

export class MemoryDriver implements BlobDriver {
  readonly name = 'memory';
  private readonly objects = new Map<string, StoredObject>();
  private readonly inProgress = new Map<string, InProgress>();

  async stat(key: string): Promise<BlobInfo> {
    const object = this.object(key);
    return { key, size: object.data.length, modifiedAt: object.modifiedAt };
  }

  async reader(key: string, options: ReadOptions = {}): Promise<Readable> {
    const object = this.object(key);
    options.signal?.throwIfAborted();
    const range = checkRange(key, object.data.length, options);
    const stream = Readable.from(range.length === 0 ? [] : [object.data.subarray(range.start, range.start + range.length)], {
      objectMode: false,
    });
    if (options.signal) addAbortSignal(options.signal, stream);
    return stream;
  }

  async put(key: string, data: Buffer, options: PutOptions = {}): Promise<void> {
    const held = this.objects.get(key)?.data;
    if (held !== undefined && keeps(options, held, data)) return;
    this.objects.set(key, { data: Buffer.from(data), modifiedAt: new Date() });
  }

  async get(key: string): Promise<Buffer> {
    return Buffer.from(this.object(key).data);
  }

  async writer(key: string, options: WriterOptions): Promise<BlobWriter> {
    options.signal?.throwIfAborted();
    const resume = options.resume;
    let state = resume ? this.inProgress.get(key) : undefined;
    if (resume && (state || resume.size > 0)) {
      if (!state || state.size < resume.size)
        throw new InProgressLostError(key, `holds ${state?.size ?? 0} of the ${resume.size} bytes its checkpoint records`);
      if (state.size > resume.size) {
        // Bytes past the checkpoint were never acknowledged: drop them.
        const all = Buffer.concat(state.chunks, state.size).subarray(0, resume.size);
        state.chunks = [Buffer.from(all)];
        state.size = resume.size;
      }
    } else {
      state = { chunks: [], size: 0, touchedAt: Date.now() };
      this.inProgress.set(key, state);
    }
    return new MemoryWriter(this, key, state as InProgress, options.signal);
  }

  async compose(parts: string[], to: string): Promise<void> {
    const data = Buffer.concat(parts.map((part) => this.object(part).data));
    this.objects.set(to, { data, modifiedAt: new Date() });
  }

  async move(from: string, to: string): Promise<void> {
    const object = this.object(from);
    this.objects.delete(from);
    this.objects.set(to, object);
  }

  async delete(key: string): Promise<void> {
    for (const map of [this.objects, this.inProgress] as Map<string, unknown>[]) {
      for (const existing of [...map.keys()]) if (isUnder(existing, key)) map.delete(existing);
    }
  }

  /** Committed objects only: in-progress objects at the same keys stay. */
  async deleteMany(keys: string[]): Promise<DeleteManyResult> {
    // Map operations are synchronous: running them concurrently would gain nothing.
    return deleteEach(keys, 1, async (key) => {
      this.objects.delete(key);
    });
  }

  async *list(prefix: string): AsyncIterable<string> {
    // A snapshot, so callers may delete while iterating.
    const keys = [...this.objects.keys()].filter((key) => key.startsWith(`${prefix}/`));
    yield* keys;
  }

  /** Removes in-progress objects not written to since `olderThan` that nothing owns; returns how many. */
  async sweep(olderThan: Date, isLive: (key: string) => Promise<boolean>): Promise<number> {
    let removed = 0;
    for (const [key, state] of [...this.inProgress]) {
      if (state.touchedAt >= olderThan.getTime() || (await isLive(key))) continue;
      this.inProgress.delete(key);
      removed++;
    }
    return removed;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  /** @internal Used by MemoryWriter. */
  finish(key: string, state: InProgress, commit: boolean): void {
    if (this.inProgress.get(key) === state) this.inProgress.delete(key);
    else if (commit) throw new BlobNotFoundError(key); // deleted or restarted meanwhile
    if (commit) this.objects.set(key, { data: Buffer.concat(state.chunks, state.size), modifiedAt: new Date() });
  }

  /** Every raw entry, committed and in progress, for the contract suite's leftover check. */
  rawKeys(): string[] {
    return [...this.objects.keys(), ...[...this.inProgress.keys()].map((key) => `inprogress:${key}`)];
  }

  private object(key: string): StoredObject {
    const object = this.objects.get(key);
    if (!object) throw new BlobNotFoundError(key);
    return object;
  }
}

class MemoryWriter implements BlobWriter {
  private done = false;

  constructor(
    private readonly driver: MemoryDriver,
    private readonly key: string,
    private readonly state: InProgress,
    private readonly signal: AbortSignal | undefined,
  ) {}

  get size(): number {
    return this.state.size;
  }

  async write(src: Readable, signal?: AbortSignal): Promise<number> {
    this.assertOpen();
    const before = this.state.size;
    const state = this.state;
    const sink = new Writable({
      write(chunk: Buffer | string, _encoding, callback) {
        // Copy: the source may reuse its buffers.
        const copy = Buffer.from(chunk);
        state.chunks.push(copy);
        state.size += copy.length;
        state.touchedAt = Date.now();
        callback();
      },
    });
    const combined = combineSignals(this.signal, signal);
    await (combined ? pipeline(src, sink, { signal: combined }) : pipeline(src, sink));
    return this.state.size - before;
  }

  async close(): Promise<WriterCheckpoint> {
    this.done = true;
    return { size: this.state.size };
  }

  async commit(): Promise<void> {
    this.assertOpen();
    this.done = true;
    this.driver.finish(this.key, this.state, true);
  }

  async cancel(): Promise<void> {
    this.done = true;
    this.driver.finish(this.key, this.state, false);
  }

  private assertOpen(): void {
    if (this.done) throw new BlobDriverError(`writer for ${this.key} is already closed`);
  }
}
