// How followers read what a fill committed (its chunks, then the blob's tail): through the app's
// SharedReads when it has them, so the followers of one process reading the same chunk cost storage
// one read of it instead of one each. Chunks never change once committed (their key holds the
// attempt), and neither does a committed blob, so a read in flight serves every follower that joins it.
import type { Readable } from 'node:stream';
import { BlobNotFoundError, type BlobDriver } from '../../../storage-drivers/blob/types.js';
import type { SharedReads } from '../shared-reads.js';

/** Bytes [start, end) of an object. */
export interface Span {
  start: number;
  end: number;
}

export class FillReads {
  constructor(
    private readonly driver: BlobDriver,
    private readonly shared: SharedReads | undefined,
  ) {}

  /**
   * Bytes [from, to) of the immutable object `key`, which lie within `span`: with shared reads, the
   * whole span is read once for every follower in this process that asks for it meanwhile, each
   * skipping to its own offset and stopping at its own end. Undefined when `key` is not stored.
   */
  async open(key: string, span: Span, from: number, to: number): Promise<AsyncIterable<Buffer> | undefined> {
    try {
      const shared = await this.openShared(key, span);
      if (shared) return slice(shared, from - span.start, to - from);
      return await this.driver.reader(key, { start: from, end: to - 1 });
    } catch (err) {
      if (err instanceof BlobNotFoundError) return undefined;
      throw err;
    }
  }

  private async openShared(key: string, span: Span): Promise<Readable | undefined> {
    if (!this.shared) return undefined;
    // Named apart from the blob GETs' shared reads (keyed by digest): a span is not the whole blob.
    const name = `fill-read ${key} ${span.start}-${span.end}`;
    const open = (signal: AbortSignal) => this.driver.reader(key, { start: span.start, end: span.end - 1, signal });
    // The follower destroys its reader when its response is cut; nothing else aborts it.
    return this.shared.open(name, span.end - span.start, open, new AbortController().signal);
  }
}

/** `length` bytes of `stream` after its first `skip`; the stream is destroyed once they are out. */
async function* slice(stream: Readable, skip: number, length: number): AsyncGenerator<Buffer> {
  let at = 0;
  const end = skip + length;
  // Leaving the loop (the end reached, or the follower gone) destroys the reader: it detaches from the shared read.
  for await (const piece of stream as AsyncIterable<Buffer>) {
    const from = Math.max(0, skip - at);
    const to = Math.min(piece.length, end - at);
    at += piece.length;
    if (to > from) yield from === 0 && to === piece.length ? piece : piece.subarray(from, to);
    if (at >= end) return;
  }
}
