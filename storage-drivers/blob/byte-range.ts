// The byte range a read asks for, resolved against an object's size the same way by every driver.
import { InvalidOffsetError, type ReadOptions } from './types.js';

export interface ByteRange {
  start: number;
  /** 0 when nothing is to be read (start at the end of the object). */
  length: number;
}

/**
 * Resolves read options against an object of `size` bytes: `end` (inclusive) past the object is
 * clamped, `start === size` reads nothing; anything else out of bounds is an InvalidOffsetError.
 */
export function checkRange(key: string, size: number, options: Pick<ReadOptions, 'start' | 'end'>): ByteRange {
  const start = options.start ?? 0;
  if (!Number.isSafeInteger(start) || start < 0 || start > size) throw new InvalidOffsetError(key, start);
  const end = options.end;
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) throw new InvalidOffsetError(key, end);
  const last = Math.min(end ?? size - 1, size - 1);
  return { start, length: Math.max(0, last - start + 1) };
}
