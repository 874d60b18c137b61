// Sends an S3 object (a GetObject response body) to a socket the way the filesystem sender sends a
// file: into two buffers from the driver's pool, each written whole and awaited before it is filled
// again, so a send holds at most ~2 MiB plus the socket's own buffers (the body is paused meanwhile).
import type { Readable, Writable } from 'node:stream';
import { InvalidOffsetError, type BlobSender, type SendCheck } from './types.js';
import { sendThroughBuffers } from './write-chunk.js';
import type { IoBufferPool } from './io-buffers.js';

/** Which bytes of a response body are the object range asked for. */
export interface BodySpan {
  /** Body bytes before the range (a store that ignored the Range header sends the whole object). */
  skip: number;
  /** Bytes to send; the body is cut off after them (some stores send more than asked). */
  length: number;
}

/**
 * A sender for `span` of `body`. A body that ends before the span is complete fails the send with
 * InvalidOffsetError (the object is shorter than it said); one that errors or closes early (the
 * connection to S3 broke) fails it with `failure(err)`. Either way the caller cuts its response.
 */
export function bodySender(
  key: string,
  body: Readable,
  size: number,
  span: BodySpan,
  start: number,
  pool: IoBufferPool,
  failure: (err: unknown) => Error,
): BlobSender {
  const filler = new BodyFiller(body, span.skip);
  return {
    size,
    async sendTo(dest: Writable, signal?: AbortSignal, check?: SendCheck): Promise<void> {
      // A client that leaves stops the download from S3 at once: the socket to S3 is destroyed, not drained.
      const onAbort = () => body.destroy();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await sendSpan(key, filler, span.length, start, dest, pool, failure, signal, check);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
      await filler.release();
    },
    async close(): Promise<void> {
      // Unsent or cut short: a body left unread would hold its pooled socket to S3 forever.
      if (!filler.released) body.destroy();
    },
  };
}

async function sendSpan(
  key: string,
  filler: BodyFiller,
  length: number,
  start: number,
  dest: Writable,
  pool: IoBufferPool,
  failure: (err: unknown) => Error,
  signal: AbortSignal | undefined,
  check: SendCheck | undefined,
): Promise<void> {
  await pool.withSendBuffers(length, (buffers) =>
    sendThroughBuffers({
      key,
      buffers,
      start,
      length,
      dest,
      signal,
      check,
      async read(buffer, want, position) {
        let got: number;
        try {
          got = await filler.fill(buffer, want);
        } catch (err) {
          signal?.throwIfAborted();
          throw failure(err);
        }
        // A body is read to the end of each buffer: a short fill means the object ended early.
        if (got < want) throw new InvalidOffsetError(key, position + got);
        return got;
      },
    }),
  );
}

/**
 * Copies a body stream into buffers the caller hands it, one at a time. The body flows only while a
 * buffer is waiting to be filled, so read-ahead is bounded by the stream's own high-water mark.
 */
class BodyFiller {
  /** Chunk bytes that did not fit the last buffer (and any that arrived while none was waiting). */
  private readonly spare: Buffer[] = [];
  private target: Buffer | undefined;
  private at = 0;
  private limit = 0;
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  ended = false;
  /** The span was sent; what else the body brings is dropped. */
  released = false;

  constructor(
    private readonly body: Readable,
    private skip: number,
  ) {
    // Paused before the data listener is added, so adding it does not start the flow.
    body.pause();
    body.on('data', (chunk: Buffer) => this.take(chunk));
    body.once('end', () => {
      this.ended = true;
      this.notify();
    });
    body.once('error', (err: Error) => {
      this.failure ??= err;
      this.notify();
    });
    body.once('close', () => {
      if (!this.ended) this.failure ??= new Error('the S3 response closed before its end');
      this.notify();
    });
  }

  /** Fills `buffer` up to `limit` bytes; fewer only when the body ended. Throws when it failed. */
  async fill(buffer: Buffer, limit: number): Promise<number> {
    this.target = buffer;
    this.at = 0;
    this.limit = limit;
    while (this.spare.length > 0 && this.at < limit) {
      const chunk = this.spare.shift() as Buffer;
      this.copy(chunk);
    }
    while (this.at < limit && !this.ended && this.failure === undefined) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.body.resume();
      });
    }
    this.target = undefined;
    if (this.at < limit && this.failure !== undefined) throw this.failure;
    return this.at;
  }

  /**
   * Once the span is sent, the body is let run to its end, so its keep-alive socket goes back to the
   * pool; a body with bytes past the span (a store that sent more than asked, such as s3rver reading
   * "bytes=0-0" as the whole object) is stopped instead of downloaded.
   */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.ended) return;
    if (this.spare.length > 0) {
      this.body.destroy();
      return;
    }
    // All the bytes the response announced are in, so its end is at most a turn away.
    while (!this.ended && this.failure === undefined && !this.body.destroyed) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.body.resume();
      });
    }
  }

  private take(chunk: Buffer): void {
    if (this.released) {
      this.body.destroy();
      this.notify();
      return;
    }
    if (this.skip > 0) {
      const dropped = Math.min(this.skip, chunk.length);
      this.skip -= dropped;
      chunk = chunk.subarray(dropped);
      if (chunk.length === 0) return;
    }
    if (this.target === undefined || this.at === this.limit) {
      this.spare.push(chunk);
      this.body.pause();
      return;
    }
    this.copy(chunk);
    if (this.at === this.limit) {
      this.body.pause();
      this.notify();
    }
  }

  private copy(chunk: Buffer): void {
    const target = this.target as Buffer;
    const n = Math.min(chunk.length, this.limit - this.at);
    chunk.copy(target, this.at, 0, n);
    this.at += n;
    if (n < chunk.length) this.spare.unshift(chunk.subarray(n));
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
