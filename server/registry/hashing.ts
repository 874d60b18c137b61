import { Transform, type TransformCallback } from 'node:stream';

export interface HashingStreamOptions {
  /** More bytes than this fail the stream with BodyTooLongError. */
  limit?: number | undefined;
  /** No byte for this long fails the stream with BodyTimeoutError (a client that stalls mid-body). */
  idleTimeoutMs?: number | undefined;
}

/** Passes bytes through unchanged while feeding them to a hash and counting them. */
export class HashingStream extends Transform {
  bytes = 0;
  private idle: NodeJS.Timeout | undefined;

  constructor(
    private readonly hash: { update(chunk: Buffer): void } | undefined,
    private readonly options: HashingStreamOptions = {},
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.armIdleTimer();
    this.once('close', () => clearTimeout(this.idle));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    const limit = this.options.limit;
    if (limit !== undefined && this.bytes > limit) {
      done(new BodyTooLongError(limit));
      return;
    }
    this.armIdleTimer();
    this.hash?.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    clearTimeout(this.idle);
    done();
  }

  private armIdleTimer(): void {
    const ms = this.options.idleTimeoutMs;
    if (ms === undefined) return;
    if (this.idle) {
      this.idle.refresh();
      return;
    }
    this.idle = setTimeout(() => this.destroy(new BodyTimeoutError(ms)), ms);
    this.idle.unref();
  }
}

export class BodyTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`request body longer than its declared ${limit} bytes`);
  }
}

export class BodyTimeoutError extends Error {
  constructor(readonly ms: number) {
    super(`the client sent no body bytes for ${ms / 1000} s`);
  }
}
