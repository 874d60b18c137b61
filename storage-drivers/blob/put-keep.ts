import type { PutOptions } from './types.js';

/** Whether put() with `options` keeps the object already holding `held` instead of writing `data`. */
export function keeps(options: PutOptions, held: Buffer, data: Buffer): boolean {
  if (options.keep === 'same-size') return held.length === data.length;
  if (options.keep === 'same-bytes') return held.equals(data);
  return false;
}
