// Checks Berth's `Berth-Signature` header on a received event:
//   Berth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=…]
// Several v1 entries are sent while Berth rotates its secret; one match is enough. The receiver may
// hold several secrets too (its own rotation), so each is tried against each entry.
import { signatureProblem } from '../server/registry/events/signature.js';

export const SIGNATURE_HEADER = 'berth-signature';
/** Older signatures are refused, so a captured request cannot be replayed later. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

export interface VerifyOptions {
  nowSeconds?: number;
  toleranceSeconds?: number;
}

export function verifyBerthSignature(header: string | undefined, body: Buffer, secrets: readonly string[], options: VerifyOptions = {}): SignatureCheck {
  if (header === undefined || header === '') return { ok: false, reason: 'no Berth-Signature header (is a secret configured for this endpoint in Berth?)' };
  if (secrets.length === 0) return { ok: false, reason: 'this receiver has no secret to check Berth-Signature with' };
  const checks = { now: options.nowSeconds ?? Date.now() / 1000, toleranceSeconds: options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS };
  // Every secret is checked, matching or not, so the time taken says nothing about which one was close.
  const problems = secrets.map((secret) => signatureProblem(header, body, secret, checks));
  if (problems.includes(undefined)) return { ok: true };
  const first = problems[0] as string;
  return { ok: false, reason: first.startsWith('no v1 signature matches') ? 'Berth-Signature matches none of the configured secrets' : first };
}

/** A secret file: one secret per line (several during a rotation); blank lines and surrounding spaces are ignored. */
export function parseSecrets(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}
