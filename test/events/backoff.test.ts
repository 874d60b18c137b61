import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelayMs } from '../../server/registry/events/backoff.js';

const POLICY = { initialMs: 1000, maxMs: 300_000 };
const MIDDLE = () => 0.5; // a factor of exactly 1
const LOW = () => 0; // the lowest factor, 0.8
const HIGH = () => 0.999_999; // just under the highest, 1.2

describe('delivery backoff', () => {
  it('doubles from the initial delay per attempt', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => backoffDelayMs(n, POLICY, { random: MIDDLE })),
      [1000, 2000, 4000, 8000, 16_000],
    );
  });

  it('stops at the maximum', () => {
    assert.equal(backoffDelayMs(9, POLICY, { random: MIDDLE }), 256_000);
    assert.equal(backoffDelayMs(10, POLICY, { random: MIDDLE }), 300_000);
    assert.equal(backoffDelayMs(5000, POLICY, { random: MIDDLE }), 300_000, 'no overflow for huge attempt counts');
  });

  it('jitters by ±20%, and never above the maximum', () => {
    assert.equal(backoffDelayMs(3, POLICY, { random: LOW }), 3200);
    assert.equal(backoffDelayMs(3, POLICY, { random: HIGH }), 4800);
    assert.equal(backoffDelayMs(20, POLICY, { random: LOW }), 240_000);
    assert.equal(backoffDelayMs(20, POLICY, { random: HIGH }), 300_000);
  });

  it('spreads delays across the jitter range with the real random source', () => {
    const seen = new Set(Array.from({ length: 50 }, () => backoffDelayMs(4, POLICY)));
    assert.ok(seen.size > 1, 'retries of many endpoints do not fall in step');
    for (const delay of seen) assert.ok(delay >= 6400 && delay <= 9600, String(delay));
  });

  it('takes Retry-After over the computed delay, capped at the maximum and without jitter', () => {
    assert.equal(backoffDelayMs(1, POLICY, { retryAfterMs: 42_000, random: LOW }), 42_000);
    assert.equal(backoffDelayMs(8, POLICY, { retryAfterMs: 0, random: HIGH }), 0);
    assert.equal(backoffDelayMs(1, POLICY, { retryAfterMs: 3_600_000 }), 300_000);
  });

  it('treats attempt numbers below 1 as the first attempt', () => {
    assert.equal(backoffDelayMs(0, POLICY, { random: MIDDLE }), 1000);
  });
});
