// S3's multipart limits at their real scale: streams up to 5 TiB, parts ≥ 5 MiB (but the last),
// ≤ 5 GiB, ≤ 10,000 of them; copies in ranges ≤ 5 GiB.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { copyRanges, partSizeFor, planCapacity, planParts, S3_LIMITS, type PartPlan } from '../../storage-drivers/blob/s3-parts.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** The parts a stream of `size` bytes becomes: full parts of the plan, then the remainder. */
function partsOf(plan: PartPlan, size: number): number[] {
  const parts: number[] = [];
  let left = size;
  for (let n = 1; left > 0; n++) {
    assert.ok(n <= S3_LIMITS.maxParts, `more than ${S3_LIMITS.maxParts} parts for ${size} bytes`);
    const part = Math.min(left, partSizeFor(plan, n));
    parts.push(part);
    left -= part;
  }
  return parts;
}

function assertLegal(parts: number[], size: number): void {
  assert.equal(
    parts.reduce((a, b) => a + b, 0),
    size,
  );
  assert.ok(parts.length <= S3_LIMITS.maxParts, `${parts.length} parts`);
  for (const [i, part] of parts.entries()) {
    assert.ok(part <= S3_LIMITS.maxPartSize, `part ${i + 1} of ${part} bytes is over 5 GiB`);
    if (i < parts.length - 1) assert.ok(part >= S3_LIMITS.minPartSize, `part ${i + 1} of ${part} bytes is under 5 MiB`);
  }
}

describe('S3 part plan', () => {
  const bases = [5 * MiB, 8 * MiB, 16 * MiB, 64 * MiB, 100 * MiB + 3, 512 * MiB, GiB, 5 * GiB];

  for (const base of bases) {
    it(`reaches 5 TiB from ${base} byte parts within S3's limits`, () => {
      const plan = planParts(base);
      assert.ok(planCapacity(plan) >= 5 * TiB, 'capacity covers 5 TiB');
      // The largest tier length that still reaches 5 TiB: one more part per tier would not.
      if (plan.tierLength < S3_LIMITS.maxParts) {
        assert.ok(planCapacity({ base, tierLength: plan.tierLength + 1 }) < 5 * TiB, 'tier length is maximal');
      }
      for (let n = 1; n <= S3_LIMITS.maxParts; n++) {
        const size = partSizeFor(plan, n);
        assert.ok(size >= S3_LIMITS.minPartSize && size <= S3_LIMITS.maxPartSize, `part ${n}: ${size}`);
        if (n > 1) assert.ok(size >= partSizeFor(plan, n - 1), 'part sizes never shrink');
      }
      for (const size of [1, base - 1, base, base + 1, 10 * GiB + 7, 100 * GiB, TiB, 5 * TiB - 1, 5 * TiB]) {
        assertLegal(partsOf(plan, size), size);
      }
    });
  }

  it('keeps 16 MiB parts for blobs up to ~15 GiB (bounded memory)', () => {
    const plan = planParts(16 * MiB);
    assert.ok(plan.tierLength >= 1000, `tier length ${plan.tierLength}`);
    const parts = partsOf(plan, 15 * GiB);
    assert.ok(parts.every((p) => p === 16 * MiB || p === parts.at(-1)));
    // A 2 GiB push never needs more than one 16 MiB part in memory.
    assert.ok(partsOf(plan, 2 * GiB).every((p) => p === 16 * MiB));
  });

  it('rejects part sizes outside 5 MiB..5 GiB and part numbers outside 1..10000', () => {
    assert.throws(() => planParts(5 * MiB - 1), RangeError);
    assert.throws(() => planParts(5 * GiB + 1), RangeError);
    const plan = planParts(5 * MiB);
    assert.throws(() => partSizeFor(plan, 0), RangeError);
    assert.throws(() => partSizeFor(plan, 10_001), RangeError);
  });
});

describe('S3 copy ranges', () => {
  function assertCopyLegal(size: number, rangeSize: number): void {
    const ranges = copyRanges(size, rangeSize);
    assert.ok(ranges.length <= S3_LIMITS.maxParts);
    assert.equal(ranges[0]?.start, 0);
    assert.equal(ranges.at(-1)?.end, size - 1);
    for (const [i, range] of ranges.entries()) {
      const length = range.end - range.start + 1;
      assert.ok(length <= S3_LIMITS.maxCopySize, `range ${i} of ${length} bytes is over 5 GiB`);
      if (i > 0) assert.equal(range.start, (ranges[i - 1]?.end ?? -2) + 1, 'ranges are contiguous');
      if (i < ranges.length - 1) assert.ok(length >= S3_LIMITS.minPartSize);
    }
  }

  it('splits objects up to 5 TiB into legal ranges', () => {
    for (const size of [5 * GiB + 1, 6 * GiB, 100 * GiB + 3, TiB, 5 * TiB]) {
      for (const rangeSize of [5 * MiB, 512 * MiB, GiB, 5 * GiB, 50 * GiB]) assertCopyLegal(size, rangeSize);
    }
  });

  it('uses the requested range size when it fits, growing it only to stay within 10,000 parts', () => {
    assert.deepEqual(
      copyRanges(20 * MiB, 8 * MiB).map((r) => [r.start, r.end]),
      [
        [0, 8 * MiB - 1],
        [8 * MiB, 16 * MiB - 1],
        [16 * MiB, 20 * MiB - 1],
      ],
    );
    assert.equal(copyRanges(5 * TiB, 5 * MiB).length, S3_LIMITS.maxParts);
    assert.throws(() => copyRanges(5 * TiB + 1, GiB), RangeError);
    assert.throws(() => copyRanges(0, GiB), RangeError);
  });
});
