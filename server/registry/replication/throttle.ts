// A rule's bandwidth cap: one token bucket per rule, shared by every blob the rule copies at once in
// this process, so parallel copies together stay under the cap. Bytes pass on as tokens allow;
// backpressure does the rest (the source is read no faster than the bucket refills).
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/** A burst of at most this long at the full rate. */
const BURST_SECONDS = 0.25;

export class BandwidthLimit {
  private tokens: number;
  private last: number;
  private readonly burst: number;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.burst = Math.max(64 * 1024, bytesPerSecond * BURST_SECONDS);
    this.tokens = this.burst;
    this.last = this.now();
  }

  /** Waits until `bytes` may go; large pieces take their share in steps of the burst size. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    let left = bytes;
    while (left > 0) {
      this.refill();
      const want = Math.min(left, this.burst);
      if (this.tokens >= want) {
        this.tokens -= want;
        left -= want;
        continue;
      }
      await sleep(Math.ceil(((want - this.tokens) / this.bytesPerSecond) * 1000), undefined, signal ? { signal } : {});
    }
  }

  /** `stream`, read no faster than the limit allows. */
  wrap(stream: Readable): Readable {
    const take = (bytes: number) => this.take(bytes);
    const paced = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        take(chunk.length).then(
          () => callback(null, chunk),
          (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
        );
      },
    });
    stream.on('error', (err) => paced.destroy(err));
    paced.on('close', () => {
      if (!stream.destroyed) stream.destroy();
    });
    return stream.pipe(paced);
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
    this.last = now;
  }
}
