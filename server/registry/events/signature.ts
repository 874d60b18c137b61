import crypto from 'node:crypto';

/*
 * Webhook bodies are signed as Stripe and GitHub sign theirs: an HMAC-SHA256 over "<t>.<body>" where t
 * is the sending time in unix seconds, so a receiver can refuse a replayed request as well as a forged
 * one. Every secret of the endpoint signs (one v1= each), so a receiver can switch to a new secret
 * while the registry still lists the old one. Receivers import verifySignature from here.
 */

export const SIGNATURE_HEADER = 'Berth-Signature';

/** How old a signature may be before verifySignature calls it a replay, by default. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

function hmac(secret: string, timestamp: number, body: Buffer): string {
  return crypto.createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/** The Berth-Signature header value: `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, one v1 per secret. */
export function sign(secrets: readonly string[], body: Buffer, nowSeconds: number): string {
  if (secrets.length === 0) throw new Error('sign needs at least one secret');
  const t = Math.floor(nowSeconds);
  return [`t=${t}`, ...secrets.map((secret) => `v1=${hmac(secret, t, body)}`)].join(',');
}

export interface VerifyOptions {
  /** Oldest (and furthest in the future) a timestamp may be; default 300. */
  toleranceSeconds?: number;
  /** The receiver's clock in unix seconds; default now. */
  now?: number;
}

/**
 * Why a signature header does not verify for `secret`, or undefined when one of its v1 values does and
 * its timestamp is within the tolerance. For receivers that want to log the reason.
 */
export function signatureProblem(header: string | undefined, body: Buffer, secret: string, options: VerifyOptions = {}): string | undefined {
  if (!header) return `no ${SIGNATURE_HEADER} header`;
  let t: number | undefined;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d{1,15}$/.test(value)) t = Number(value);
    else if (key === 'v1') candidates.push(value);
  }
  if (t === undefined) return `${SIGNATURE_HEADER} has no t=<unix seconds>`;
  if (candidates.length === 0) return `${SIGNATURE_HEADER} has no v1= signature`;
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = options.now ?? Date.now() / 1000;
  if (Math.abs(now - t) > tolerance)
    return `signature timestamp is ${Math.round(now - t)}s from now, beyond the ${tolerance}s tolerance (a replay, or clocks apart)`;
  const expected = Buffer.from(hmac(secret, t, body), 'utf8');
  // Compare every candidate, not just until the first match: timing says nothing about which one.
  let matched = false;
  for (const candidate of candidates) {
    const given = Buffer.from(candidate, 'utf8');
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) matched = true;
  }
  return matched ? undefined : 'no v1 signature matches the body for this secret';
}

/** True when `header` signs `body` with `secret` and is recent enough (see signatureProblem). */
export function verifySignature(header: string | undefined, body: Buffer, secret: string, options: VerifyOptions = {}): boolean {
  return signatureProblem(header, body, secret, options) === undefined;
}
