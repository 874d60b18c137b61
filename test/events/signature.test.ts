import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it, mock } from 'node:test';
import { sign, signatureProblem, verifySignature } from '../../server/registry/events/signature.js';

const BODY = Buffer.from('{"specversion":"1.0","id":"abc"}');
const NOW = 1_796_000_000;

describe('event signatures', () => {
  it('signs as t=<seconds>,v1=<HMAC-SHA256 over "<t>.<body>"> (what a receiver in any language computes)', () => {
    const header = sign(['s3cret'], BODY, NOW + 0.9);
    const expected = crypto.createHmac('sha256', 's3cret').update(`${NOW}.${BODY.toString()}`).digest('hex');
    assert.equal(header, `t=${NOW},v1=${expected}`);
  });

  it('verifies what it signed', () => {
    const header = sign(['s3cret'], BODY, NOW);
    assert.equal(verifySignature(header, BODY, 's3cret', { now: NOW + 10 }), true);
    assert.equal(signatureProblem(header, BODY, 's3cret', { now: NOW }), undefined);
  });

  it('refuses a changed body, a wrong secret, a changed timestamp or a changed signature', () => {
    const header = sign(['s3cret'], BODY, NOW);
    const options = { now: NOW };
    assert.equal(verifySignature(header, Buffer.from(`${BODY.toString()} `), 's3cret', options), false);
    assert.equal(verifySignature(header, BODY, 'other', options), false);
    assert.equal(verifySignature(header.replace(`t=${NOW}`, `t=${NOW + 1}`), BODY, 's3cret', options), false);
    const flipped = header.slice(0, -1) + (header.endsWith('0') ? '1' : '0');
    assert.equal(verifySignature(flipped, BODY, 's3cret', options), false);
    assert.match(signatureProblem(flipped, BODY, 's3cret', options) ?? '', /no v1 signature matches/);
  });

  it('refuses stale and future timestamps beyond the tolerance (replays)', () => {
    const header = sign(['s3cret'], BODY, NOW);
    assert.equal(verifySignature(header, BODY, 's3cret', { now: NOW + 300 }), true, 'the default tolerance is 300 s');
    assert.equal(verifySignature(header, BODY, 's3cret', { now: NOW + 301 }), false);
    assert.match(signatureProblem(header, BODY, 's3cret', { now: NOW + 301 }) ?? '', /301s from now, beyond the 300s tolerance/);
    assert.equal(verifySignature(header, BODY, 's3cret', { now: NOW - 301 }), false);
    assert.equal(verifySignature(header, BODY, 's3cret', { now: NOW + 30, toleranceSeconds: 10 }), false);
    // The default clock is the real one: a signature from an hour ago is refused without options.
    assert.equal(verifySignature(sign(['s3cret'], BODY, Date.now() / 1000 - 3600), BODY, 's3cret'), false);
    assert.equal(verifySignature(sign(['s3cret'], BODY, Date.now() / 1000), BODY, 's3cret'), true);
  });

  it('signs with every secret during a rotation, and either one verifies', () => {
    const header = sign(['new', 'old'], BODY, NOW);
    assert.equal(header.split(',').filter((p) => p.startsWith('v1=')).length, 2);
    assert.equal(verifySignature(header, BODY, 'new', { now: NOW }), true);
    assert.equal(verifySignature(header, BODY, 'old', { now: NOW }), true);
    assert.equal(verifySignature(header, BODY, 'neither', { now: NOW }), false);
  });

  it('refuses malformed headers with a reason, never a throw', () => {
    for (const [header, reason] of [
      [undefined, /no Berth-Signature header/],
      ['', /no Berth-Signature header/],
      ['v1=abc', /no t=/],
      [`t=${NOW}`, /no v1=/],
      [`t=soon,v1=abc`, /no t=/],
      [`t=${NOW},v1=short`, /no v1 signature matches/],
      [`t=${NOW},v1=${'zz'.repeat(32)}`, /no v1 signature matches/],
      ['garbage', /no t=/],
    ] as const) {
      assert.match(signatureProblem(header, BODY, 's3cret', { now: NOW }) ?? '', reason, String(header));
      assert.equal(verifySignature(header, BODY, 's3cret', { now: NOW }), false);
    }
  });

  it('compares signatures with crypto.timingSafeEqual, every candidate', () => {
    const spy = mock.method(crypto, 'timingSafeEqual');
    try {
      const good = sign(['s3cret'], BODY, NOW);
      const bad = sign(['wrong'], BODY, NOW);
      const header = `${good},${bad.split(',')[1] as string}`;
      assert.equal(verifySignature(header, BODY, 's3cret', { now: NOW }), true);
      // Both candidates were compared, the matching one first, so nothing stopped at the match.
      assert.equal(spy.mock.callCount(), 2);
      assert.equal(verifySignature(bad, BODY, 's3cret', { now: NOW }), false);
      assert.equal(spy.mock.callCount(), 3);
    } finally {
      spy.mock.restore();
    }
  });

  it('needs a secret to sign', () => {
    assert.throws(() => sign([], BODY, NOW), /at least one secret/);
  });
});
