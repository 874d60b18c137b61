import { Transform, type TransformCallback } from 'node:stream';

/** Passes bytes through unchanged while feeding them to a hash and counting them. */
export class HashingStream extends Transform {
  bytes = 0;
  constructor(private readonly hash: { update(chunk: Buffer): void } | undefined, private readonly limit?: number) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.limit !== undefined && this.bytes > this.limit) {
      done(new BodyTooLongError(this.limit));
      return;
    }
    this.hash?.update(chunk);
    done(null, chunk);
  }
}

export class BodyTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`request body longer than its declared ${limit} bytes`);
  }
}
