// Checks Berth's `Berth-Signature` header on a received event:
//   Berth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=…]
// Several v1 entries are sent while Berth rotates its secret; one match is enough. The receiver may
// hold several secrets too (its own rotation), so each is tried against each entry.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'berth-signature';
/** Older signatures are refused, so a captured request cannot be replayed later. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

export interface VerifyOptions {
  nowSeconds?: number;
  toleranceSeconds?: number;
}

const HEX_SHA256 = /^[0-9a-f]{64}$/;

export function verifyBerthSignature(header: string | undefined, body: Buffer, secrets: readonly string[], options: VerifyOptions = {}): SignatureCheck {
  if (header === undefined || header === '') return { ok: false, reason: 'no Berth-Signature header (is a secret configured for this endpoint in Berth?)' };
  let timestamp: string | undefined;
  const candidates: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') timestamp = value;
    else if (key === 'v1' && HEX_SHA256.test(value)) candidates.push(Buffer.from(value, 'hex'));
  }
  if (timestamp === undefined || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'Berth-Signature has no valid t=<unix seconds>' };
  if (candidates.length === 0) return { ok: false, reason: 'Berth-Signature has no v1=<hex HMAC-SHA256>' };
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const age = now - Number(timestamp);
  if (Math.abs(age) > tolerance) {
    return { ok: false, reason: `Berth-Signature timestamp is ${age} s from this host's clock (limit ${tolerance} s): a replay, or a clock out of sync` };
  }
  // Every pair is compared, matching or not, so the time taken says nothing about which one was close.
  let matched = false;
  for (const secret of secrets) {
    const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
    for (const candidate of candidates) if (timingSafeEqual(expected, candidate)) matched = true;
  }
  return matched ? { ok: true } : { ok: false, reason: 'Berth-Signature matches none of the configured secrets' };
}

/** A secret file: one secret per line (several during a rotation); blank lines and surrounding spaces are ignored. */
export function parseSecrets(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}
