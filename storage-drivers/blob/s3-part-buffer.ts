// The bytes of an S3 upload's next part (or tail segment) while they are gathered, copied into large
// buffers lent by the driver's pool. Holding the request's own 16–64 KiB socket chunks instead kept
// thousands of small allocations alive per upload; they outlived the young generation, so V8 freed them
// only at a major GC, and the allocator kept most of those pages afterwards (Berth S3 grew to ~300 MiB
// RSS over a benchmark run whose live buffers never exceeded ~130 MiB).
import type { IoBufferPool } from './io-buffers.js';

export class PartBuffer {
  private readonly slabs: Buffer[] = [];
  /** Bytes used in the last slab. */
  private used = 0;
  private total = 0;
  private tainted = false;

  constructor(private readonly pool: IoBufferPool) {}

  get length(): number {
    return this.total;
  }

  /** Whether `bytes` more fit in the buffers already held. */
  fits(bytes: number): boolean {
    const last = this.slabs[this.slabs.length - 1];
    return last !== undefined && last.length - this.used >= bytes;
  }

  /** Copies `chunk` in; the caller's buffer may be reused at once. */
  append(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      let slab = this.slabs[this.slabs.length - 1];
      if (slab === undefined || this.used === slab.length) {
        slab = this.pool.acquire(this.pool.bufferBytes);
        this.slabs.push(slab);
        this.used = 0;
      }
      const copied = chunk.copy(slab, this.used, at);
      this.used += copied;
      at += copied;
    }
    this.total += chunk.length;
  }

  /** Views of the bytes in order, valid until release(). */
  views(): Buffer[] {
    return this.slabs.map((slab, i) => (i === this.slabs.length - 1 ? slab.subarray(0, this.used) : slab));
  }

  /** A request that read the views failed: it may still have writes from them queued on its socket. */
  taint(): void {
    this.tainted = true;
  }

  /** Done with the bytes: back to the pool, or out of it when tainted. */
  release(): void {
    for (const slab of this.slabs) {
      if (this.tainted) this.pool.discard(slab);
      else this.pool.release(slab);
    }
    this.clear();
  }

  private clear(): void {
    this.slabs.length = 0;
    this.used = 0;
    this.total = 0;
    this.tainted = false;
  }
}
