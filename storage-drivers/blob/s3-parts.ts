// Part-size arithmetic for S3 multipart uploads and copies. Pure functions, no I/O, so the limits can be
// checked at their real scale (5 TiB objects) in unit tests.

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** The hard rules of AWS S3 (most S3-compatible stores share or loosen them). */
export interface S3Limits {
  /** Every part except the last must be at least this big. */
  minPartSize: number;
  maxPartSize: number;
  maxParts: number;
  maxObjectSize: number;
  /** Largest single CopyObject, and largest UploadPartCopy range. */
  maxCopySize: number;
}

export const S3_LIMITS: Readonly<S3Limits> = Object.freeze({
  minPartSize: 5 * MiB,
  maxPartSize: 5 * GiB,
  maxParts: 10_000,
  maxObjectSize: 5 * TiB,
  maxCopySize: 5 * GiB,
});

/**
 * Part sizes for an upload whose final length is unknown while it streams: `base` bytes for the first
 * `tierLength` parts, then doubling every `tierLength` parts, capped at the maximum part size. Small and
 * medium blobs only ever use `base`-sized parts (bounded memory); only huge blobs reach bigger parts.
 */
export interface PartPlan {
  base: number;
  tierLength: number;
}

/** Size of part `partNumber` (1-based) under `plan`. Every part but the last has exactly this size. */
export function partSizeFor(plan: PartPlan, partNumber: number, limits: S3Limits = S3_LIMITS): number {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > limits.maxParts) {
    throw new RangeError(`part number ${partNumber} outside 1..${limits.maxParts}`);
  }
  const tier = Math.floor((partNumber - 1) / plan.tierLength);
  // 2 ** tier overflows nothing: tiers stop mattering once the cap (≤ 5 GiB) is reached.
  return Math.min(limits.maxPartSize, plan.base * 2 ** Math.min(tier, 40));
}

/** Bytes that `maxParts` parts of `plan` can hold. */
export function planCapacity(plan: PartPlan, limits: S3Limits = S3_LIMITS): number {
  let total = 0;
  for (let first = 1, tier = 0; first <= limits.maxParts; first += plan.tierLength, tier++) {
    const parts = Math.min(plan.tierLength, limits.maxParts - first + 1);
    total += parts * Math.min(limits.maxPartSize, plan.base * 2 ** Math.min(tier, 40));
  }
  return total;
}

/**
 * The plan starting at `base` that keeps parts at `base` for as long as possible while still letting
 * `maxParts` parts reach `maxObjectSize` (capacity shrinks as the tier length grows, so binary search).
 */
export function planParts(base: number, limits: S3Limits = S3_LIMITS): PartPlan {
  if (!Number.isInteger(base) || base < limits.minPartSize || base > limits.maxPartSize) {
    throw new RangeError(`part size ${base} outside ${limits.minPartSize}..${limits.maxPartSize}`);
  }
  let low = 1;
  let high = limits.maxParts;
  if (planCapacity({ base, tierLength: low }, limits) < limits.maxObjectSize) {
    throw new RangeError(`no part plan from ${base} bytes reaches ${limits.maxObjectSize} bytes`);
  }
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (planCapacity({ base, tierLength: mid }, limits) >= limits.maxObjectSize) low = mid;
    else high = mid - 1;
  }
  return { base, tierLength: low };
}

/** An inclusive byte range, as S3's `bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Ranges for a multipart copy of `size` bytes: each at most `rangeSize` (itself at most maxCopySize),
 * at most maxParts of them, every range but the last at least minPartSize.
 */
export function copyRanges(size: number, rangeSize: number, limits: S3Limits = S3_LIMITS): ByteRange[] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`copy size ${size} must be positive`);
  if (size > limits.maxObjectSize) throw new RangeError(`object of ${size} bytes exceeds ${limits.maxObjectSize}`);
  const step = Math.max(Math.min(rangeSize, limits.maxCopySize), Math.ceil(size / limits.maxParts), limits.minPartSize);
  if (step > limits.maxCopySize) throw new RangeError(`object of ${size} bytes needs copy ranges over the limit`);
  const ranges: ByteRange[] = [];
  for (let start = 0; start < size; start += step) {
    ranges.push({ start, end: Math.min(size, start + step) - 1 });
  }
  return ranges;
}

/** Formats a range for the Range / x-amz-copy-source-range headers. */
export function formatRange(range: ByteRange): string {
  return `bytes=${range.start}-${range.end}`;
}
