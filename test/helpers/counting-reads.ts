// A blob driver that counts the reads it opens per key, for tests that check how often storage is read.
import type { BlobDriver } from '../../storage-drivers/blob/types.js';

/** `driver`, counting the reads it opens (of objects that exist) per key. */
export function countingReads(driver: BlobDriver): { driver: BlobDriver; reads: Map<string, number> } {
  const reads = new Map<string, number>();
  const counting = new Proxy(driver, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (prop !== 'reader') return (value as (...a: unknown[]) => unknown).bind(target);
      // Counted once open: a miss (a chunk not committed yet) reads nothing.
      return async (key: string, ...rest: unknown[]) => {
        const stream = (await (value as (...a: unknown[]) => Promise<unknown>).call(target, key, ...rest)) as unknown;
        reads.set(key, (reads.get(key) ?? 0) + 1);
        return stream;
      };
    },
  });
  return { driver: counting, reads };
}

/** The reads of committed fill chunks (`fills/<alg>/<hex>/<attempt>/<index>`) among `reads`. */
export function chunkReads(reads: Map<string, number>): [string, number][] {
  return [...reads].filter(([key]) => /^fills\/[^/]+\/[^/]+\/[^/]+\/\d+$/.test(key));
}
