/** Large buffers keep syscalls few: one 1 MiB read or write instead of sixteen 64 KiB ones. */
export const IO_BUFFER = 1024 * 1024;
/** The buffers lent once a pool's budget is spent: the size Node's own file streams read in. */
export const SMALL_IO_BUFFER = 64 * 1024;

/**
 * The large read buffers of blob senders, reused and bounded by bytes. Each GET being sent holds two
 * buffers while it runs; allocated per GET, 64 concurrent pulls of a few MiB held 2 MiB each (over
 * 60 MiB of a 200 MiB budget), and the allocator kept much of it after they were freed. A sender that
 * finds the budget spent gets small buffers of its own instead of waiting: it sends at more syscalls
 * per MiB, never later.
 */
export class IoBufferPool {
  private readonly free: Buffer[] = [];
  /** Every pooled buffer alive (free or lent out), so a small one is never taken into the pool. */
  private readonly members = new Set<Buffer>();
  /** Large buffers asked for while the budget was spent (small ones were lent instead). */
  lentPastBudget = 0;

  constructor(
    /** Size of each pooled buffer. */
    readonly bufferBytes: number,
    /** Pooled buffers, free and lent out, never add up to more than this. */
    readonly maxBytes: number,
    /** Size of the buffers handed out beyond the budget, and for reads that need no more. */
    readonly smallBytes: number,
  ) {
    if (smallBytes > bufferBytes) throw new Error('IoBufferPool: smallBytes must not exceed bufferBytes');
  }

  /** Bytes of pooled buffers alive (free or lent out); at most maxBytes. */
  get heldBytes(): number {
    return this.members.size * this.bufferBytes;
  }

  /** Whether acquire() of a large buffer would lend a pooled one now. */
  get canLend(): boolean {
    return this.free.length > 0 || this.heldBytes + this.bufferBytes <= this.maxBytes;
  }

  /** A buffer for reads of up to `need` bytes: pooled when `need` is large and the budget allows. */
  acquire(need: number): Buffer {
    if (need <= this.smallBytes) return Buffer.allocUnsafeSlow(Math.max(1, need));
    const reused = this.free.pop();
    if (reused) return reused;
    if (this.heldBytes + this.bufferBytes <= this.maxBytes) {
      const fresh = Buffer.allocUnsafeSlow(this.bufferBytes);
      this.members.add(fresh);
      return fresh;
    }
    this.lentPastBudget++;
    return Buffer.allocUnsafeSlow(this.smallBytes);
  }

  /** Back to the pool once nothing refers to its bytes any more (every write from it has completed). */
  release(buffer: Buffer): void {
    if (this.members.has(buffer)) this.free.push(buffer);
  }

  /**
   * Lends the buffers of one send of `length` bytes (one when it fits, else two to alternate) and takes
   * them back once `send` is done; after a failure they leave the pool (see discard).
   */
  async withSendBuffers(length: number, send: (buffers: Buffer[]) => Promise<void>): Promise<void> {
    const first = this.acquire(length);
    const buffers = length > first.length ? [first, this.acquire(length - first.length)] : [first];
    try {
      await send(buffers);
    } catch (err) {
      for (const b of buffers) this.discard(b);
      throw err;
    }
    for (const b of buffers) this.release(b);
  }

  /**
   * Leaves the pool: for a buffer a failed send may still have queued on a socket. Reusing it could
   * put another blob's bytes on that connection; dropped, it is freed once the socket lets go of it.
   */
  discard(buffer: Buffer): void {
    this.members.delete(buffer);
  }
}
