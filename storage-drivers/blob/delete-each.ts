// deleteMany() for drivers without a batch call: one delete per key, a bounded number at a time, so a
// garbage-collection pass over thousands of keys neither runs them one by one nor opens thousands of
// file operations at once.
import type { DeleteManyResult } from './types.js';

/**
 * Runs `remove` once for each distinct key, at most `concurrency` at a time. A key whose `remove`
 * resolves is deleted, one whose `remove` rejects failed with that error; both lists keep the order
 * of `keys`.
 */
export async function deleteEach(keys: readonly string[], concurrency: number, remove: (key: string) => Promise<void>): Promise<DeleteManyResult> {
  const distinct = [...new Set(keys)];
  const outcomes: (Error | undefined)[] = Array.from({ length: distinct.length });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < distinct.length) {
      const index = next++;
      try {
        await remove(distinct[index] as string);
      } catch (err) {
        outcomes[index] = err instanceof Error ? err : new Error(String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, distinct.length)) }, worker));
  const result: DeleteManyResult = { deleted: [], failed: [] };
  for (const [index, key] of distinct.entries()) {
    const error = outcomes[index];
    if (error === undefined) result.deleted.push(key);
    else result.failed.push({ key, error });
  }
  return result;
}
