import { BlobNotFoundError, type BlobDriver } from '../../../storage-drivers/blob/types.js';
import { fillStateKey } from '../keys.js';
import type { ParsedDigest } from '../references.js';

/**
 * What every process knows of one blob's fill, kept in storage next to its chunks: which attempt's
 * chunks to read, how big the blob is (once the source said), how big a chunk is, and how it failed.
 * Who fills right now is the metadata lease's business, not this record's.
 */
export interface FillState {
  attempt: string;
  chunkBytes: number;
  /** Unknown until the source opened. */
  size?: number | undefined;
  status: 'filling' | 'failed';
  /** Why a failed fill failed, for the waiters in other processes. */
  error?: string | undefined;
}

export async function readFillState(driver: BlobDriver, digest: ParsedDigest): Promise<FillState | undefined> {
  let raw: Buffer;
  try {
    raw = await driver.get(fillStateKey(digest));
  } catch (err) {
    if (err instanceof BlobNotFoundError) return undefined;
    throw err;
  }
  try {
    const parsed = JSON.parse(raw.toString('utf8')) as Partial<FillState>;
    if (typeof parsed.attempt !== 'string' || typeof parsed.chunkBytes !== 'number' || (parsed.status !== 'filling' && parsed.status !== 'failed'))
      return undefined;
    return {
      attempt: parsed.attempt,
      chunkBytes: parsed.chunkBytes,
      size: typeof parsed.size === 'number' ? parsed.size : undefined,
      status: parsed.status,
      error: typeof parsed.error === 'string' ? parsed.error : undefined,
    };
  } catch {
    // A torn or foreign record: treated as no fill, so the next request starts a fresh one.
    return undefined;
  }
}

export async function writeFillState(driver: BlobDriver, digest: ParsedDigest, state: FillState): Promise<void> {
  await driver.put(fillStateKey(digest), Buffer.from(JSON.stringify(state)));
}
