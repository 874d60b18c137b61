// Small pieces every blob driver needs the same way.
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

/** True when `key` is `prefix` itself or lies under `prefix/`. */
export function isUnder(key: string, prefix: string): boolean {
  return key === prefix || key.startsWith(`${prefix}/`);
}

/** One signal that aborts when any given signal does; undefined when none is given. */
export function combineSignals(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length <= 1) return present[0];
  return AbortSignal.any(present);
}
