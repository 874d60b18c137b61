import { Transform, type TransformCallback } from 'node:stream';
import { QuotaStreamRefusal, type Quotas } from './service.js';

/**
 * Passes an upload's bytes through while its reservation covers them, growing the reservation a
 * step at a time (one metadata call per step, not per chunk); a chunk that does not fit fails the
 * stream at once with QuotaStreamRefusal. The reservation's expiry is renewed while bytes flow.
 */
export class QuotaMeter extends Transform {
  /** Set once a chunk was refused: the error the upload ends with, whichever stream reports first. */
  refusal: Error | undefined;
  private received = 0;
  private reserved: number;
  private readonly renewal: NodeJS.Timeout;

  constructor(
    private readonly quotas: Quotas,
    private readonly repo: string,
    private readonly id: string,
    /** Bytes the upload held before this request: they are reserved too. */
    private readonly offset: number,
    /** The upload's total once this request's body is in, when its length is known. */
    private readonly expected: number | undefined,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.reserved = 0;
    const every = (quotas.config.reservationSeconds * 1000) / 3;
    this.renewal = setInterval(() => {
      if (this.reserved > 0) this.quotas.renew(this.repo, this.id, this.reserved).catch(() => undefined);
    }, every);
    this.renewal.unref();
    this.once('close', () => clearInterval(this.renewal));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.received += chunk.length;
    const need = this.offset + this.received;
    if (need <= this.reserved) {
      done(null, chunk);
      return;
    }
    this.quotas.reserveFor(this.repo, this.id, need, this.expected).then(
      (bytes) => {
        this.reserved = bytes;
        done(null, chunk);
      },
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        if (error instanceof QuotaStreamRefusal) this.refusal = error;
        done(error);
      },
    );
  }

  override _flush(done: TransformCallback): void {
    clearInterval(this.renewal);
    done();
  }
}
