import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  type CryptoKey,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWSHeaderParameters,
  SignJWT,
  calculateJwkThumbprint,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  exportJWK,
  importSPKI,
  importX509,
  jwtVerify,
} from 'jose';
import type { ExternalIssuerConfig } from './config.js';
import { SIGNING_ALGORITHMS } from './config.js';
import type { KeyStore } from './keys.js';
import { mergeTagImmutability, readTagImmutability, type TokenImmutability } from './tag-patterns.js';
import type { AccessNeed } from './types.js';

/** `typ` of refresh tokens, so one can never pass as an access token or the reverse. */
export const REFRESH_TYP = 'berth-refresh+jwt';

export interface TokenSettings {
  issuer: string;
  service: string;
  tokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  clockToleranceSeconds: number;
  now: () => number;
}

export interface VerifiedToken {
  subject: string;
  access: AccessNeed[];
  /** `meta.tag_immutable_patterns` of the access entries, by repository; absent when none carries any. */
  tagImmutability?: Map<string, TokenImmutability>;
  /** True for tokens Berth signed itself; their subject can be looked up in the live rules. */
  local: boolean;
}

/** `message` is safe to show the client (why a token's times do not fit); `reason` is for the log. */
export type Verification = { ok: true; token: VerifiedToken } | { ok: false; reason: string; message?: string };

/** A token whose times make it invalid; its message tells the client what to fix. */
class TokenTimeError extends Error {}

/**
 * jose checks `iat` only against a maximum age, so a token "issued" an hour from now (signed with a
 * stolen or misused key, or by an issuer with a wrong clock) would pass. Refuse it, as `nbf` would be.
 */
function refuseFutureIat(payload: JWTPayload, now: Date, toleranceSeconds: number): void {
  if (payload.iat === undefined) return;
  if (typeof payload.iat !== 'number' || !Number.isFinite(payload.iat)) throw new TokenTimeError('token has an invalid iat claim');
  const ahead = payload.iat - Math.floor(now.getTime() / 1000);
  if (ahead > toleranceSeconds) {
    throw new TokenTimeError(
      `token is issued in the future (iat is ${ahead} s ahead, beyond the ${toleranceSeconds} s clock tolerance): check the clocks of the token issuer and the registry`,
    );
  }
}

/** The client-facing message for a refused token, when it is about the token's times. */
function timeMessage(err: unknown, toleranceSeconds: number): string | undefined {
  if (err instanceof TokenTimeError) return err.message;
  if (err instanceof errors.JWTExpired) return 'token has expired: ask the token endpoint for a new one';
  if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'nbf' && err.reason === 'check_failed') {
    return `token is not valid yet (nbf is in the future, beyond the ${toleranceSeconds} s clock tolerance): check the clocks of the token issuer and the registry`;
  }
  return undefined;
}

function refreshAudience(issuer: string): string {
  return `berth-refresh:${issuer}`;
}

/** Signs access and refresh tokens with the active key; `kid` is always set. */
export class TokenIssuer {
  constructor(
    private readonly keys: KeyStore,
    private readonly settings: TokenSettings,
  ) {}

  async issueAccess(subject: string, access: AccessNeed[]): Promise<{ token: string; expiresIn: number; issuedAt: string }> {
    const { kid, alg, key } = await this.keys.signingKey();
    const now = Math.floor(this.settings.now() / 1000);
    const ttl = this.settings.tokenTtlSeconds;
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg, kid, typ: 'JWT' })
      .setIssuer(this.settings.issuer)
      .setSubject(subject)
      .setAudience(this.settings.service)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + ttl)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(key);
    return { token, expiresIn: ttl, issuedAt: new Date(now * 1000).toISOString() };
  }

  /** `binding` ties the token to the credential it came from (password hash or robot id). */
  async issueRefresh(subject: string, binding: string): Promise<string> {
    const { kid, alg, key } = await this.keys.signingKey();
    const now = Math.floor(this.settings.now() / 1000);
    return new SignJWT({ bnd: binding })
      .setProtectedHeader({ alg, kid, typ: REFRESH_TYP })
      .setIssuer(this.settings.issuer)
      .setSubject(subject)
      .setAudience(refreshAudience(this.settings.issuer))
      .setIssuedAt(now)
      .setExpirationTime(now + this.settings.refreshTokenTtlSeconds)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(key);
  }

  /** Checks a refresh token; the caller still has to confirm the subject and binding are current. */
  async verifyRefresh(token: string): Promise<{ subject: string; binding: string } | undefined> {
    try {
      const { payload } = await jwtVerify(token, localKeyGetter(this.keys, this.settings.refreshTokenTtlSeconds + this.settings.clockToleranceSeconds), {
        algorithms: [...SIGNING_ALGORITHMS],
        issuer: this.settings.issuer,
        audience: refreshAudience(this.settings.issuer),
        typ: REFRESH_TYP,
        clockTolerance: this.settings.clockToleranceSeconds,
        currentDate: new Date(this.settings.now()),
        requiredClaims: ['exp', 'sub'],
      });
      refuseFutureIat(payload, new Date(this.settings.now()), this.settings.clockToleranceSeconds);
      if (typeof payload.bnd !== 'string' || typeof payload.sub !== 'string' || payload.sub === '') return undefined;
      return { subject: payload.sub, binding: payload.bnd };
    } catch {
      return undefined;
    }
  }
}

function localKeyGetter(keys: KeyStore, lifetimeSeconds: number): JWTVerifyGetKey {
  return async (header: JWSHeaderParameters) => {
    if (typeof header.kid !== 'string') throw new Error('token has no kid');
    const found = await keys.verificationKey(header.kid, lifetimeSeconds);
    if (!found) throw new Error('unknown or retired kid');
    if (found.alg !== header.alg) throw new Error('alg does not match the key');
    return found.key;
  };
}

/** Reads the `access` claim; entries that are not well-formed are dropped, never widened. */
export function accessClaim(payload: JWTPayload): AccessNeed[] {
  return readAccessClaim(payload).access;
}

/**
 * The `access` claim with what its repository entries carry under `meta` (GitLab's shape): the
 * immutable-tag patterns, kept apart from the grants so they can only add refusals.
 */
export function readAccessClaim(payload: JWTPayload): { access: AccessNeed[]; tagImmutability?: Map<string, TokenImmutability> } {
  const raw = payload.access;
  if (!Array.isArray(raw)) return { access: [] };
  const access: AccessNeed[] = [];
  let tagImmutability: Map<string, TokenImmutability> | undefined;
  for (const item of raw as unknown[]) {
    if (!item || typeof item !== 'object') continue;
    const { type, name, actions, meta } = item as Record<string, unknown>;
    if (typeof name !== 'string' || !Array.isArray(actions) || !actions.every((a): a is string => typeof a === 'string')) continue;
    const t = type === 'repository(plugin)' ? 'repository' : type;
    if (t !== 'repository' && t !== 'registry') continue;
    access.push({ type: t, name, actions });
    const patterns = t === 'repository' ? readTagImmutability(meta) : undefined;
    if (patterns) {
      tagImmutability ??= new Map();
      tagImmutability.set(name, mergeTagImmutability(tagImmutability.get(name), patterns));
    }
  }
  return tagImmutability ? { access, tagImmutability } : { access };
}

function verifiedToken(payload: JWTPayload, local: boolean): VerifiedToken {
  return { subject: payload.sub ?? '', ...readAccessClaim(payload), local };
}

interface IssuerVerifier {
  issuer: string;
  verify(token: string, now: Date): Promise<JWTPayload>;
}

/** Verifies access tokens: Berth's own (keys from the KeyStore) and those of trusted external issuers. */
export class AccessTokenVerifier {
  private readonly externals = new Map<string, IssuerVerifier>();

  private constructor(
    private readonly keys: KeyStore | undefined,
    private readonly settings: TokenSettings,
  ) {}

  static async create(keys: KeyStore | undefined, settings: TokenSettings, externals: ExternalIssuerConfig[]): Promise<AccessTokenVerifier> {
    const v = new AccessTokenVerifier(keys, settings);
    for (const ext of externals) {
      if (keys && ext.issuer === settings.issuer) throw new Error(`external issuer ${ext.issuer} has the same name as Berth's own issuer`);
      v.externals.set(ext.issuer, await externalVerifier(ext, settings));
    }
    return v;
  }

  async verify(token: string): Promise<Verification> {
    let iss: string | undefined;
    try {
      // Unverified: only picks which keys to check the signature with; iss is verified below.
      iss = decodeJwt(token).iss;
    } catch {
      return { ok: false, reason: 'malformed token' };
    }
    const now = new Date(this.settings.now());
    try {
      if (this.keys && iss === this.settings.issuer) {
        const { payload, protectedHeader } = await jwtVerify(
          token,
          localKeyGetter(this.keys, this.settings.tokenTtlSeconds + this.settings.clockToleranceSeconds),
          {
            algorithms: [...SIGNING_ALGORITHMS],
            issuer: this.settings.issuer,
            audience: this.settings.service,
            clockTolerance: this.settings.clockToleranceSeconds,
            currentDate: now,
            requiredClaims: ['exp', 'iat'],
          },
        );
        refuseFutureIat(payload, now, this.settings.clockToleranceSeconds);
        if (protectedHeader.typ === REFRESH_TYP) return { ok: false, reason: 'refresh token used as access token' };
        return { ok: true, token: verifiedToken(payload, true) };
      }
      const ext = iss === undefined ? undefined : this.externals.get(iss);
      if (!ext) return { ok: false, reason: 'untrusted issuer' };
      const payload = await ext.verify(token, now);
      return { ok: true, token: verifiedToken(payload, false) };
    } catch (err) {
      const message = timeMessage(err, this.settings.clockToleranceSeconds);
      return message === undefined ? { ok: false, reason: (err as Error).message } : { ok: false, reason: (err as Error).message, message };
    }
  }
}

async function externalVerifier(ext: ExternalIssuerConfig, settings: TokenSettings): Promise<IssuerVerifier> {
  const options = (now: Date) => ({
    algorithms: ext.algorithms,
    issuer: ext.issuer,
    audience: ext.audience ?? settings.service,
    clockTolerance: settings.clockToleranceSeconds,
    currentDate: now,
    requiredClaims: ['exp'],
  });
  const remote = ext.jwksUrl
    ? createRemoteJWKSet(new URL(ext.jwksUrl), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: 5_000 })
    : undefined;
  const pemKeys: Array<{ alg: string; kid: string; key: CryptoKey }> = [];
  for (const file of ext.publicKeyFiles) {
    const pem = await readFile(file, 'utf8');
    for (const alg of ext.algorithms) {
      try {
        const key = pem.includes('BEGIN CERTIFICATE') ? await importX509(pem, alg, { extractable: true }) : await importSPKI(pem, alg, { extractable: true });
        pemKeys.push({ alg, key, kid: await calculateJwkThumbprint(await exportJWK(key)) });
      } catch {
        // The key's type does not fit this algorithm (e.g. an RSA key for ES256).
      }
    }
  }
  if (ext.publicKeyFiles.length > 0 && pemKeys.length === 0)
    throw new Error(`external issuer ${ext.issuer}: no key in publicKeyFiles fits ${ext.algorithms.join(', ')}`);
  const verifySignature = async (token: string, now: Date): Promise<JWTPayload> => {
    let lastError: unknown = new Error('no key for this token');
    const header = decodeProtectedHeader(token);
    const candidates = pemKeys.filter((k) => k.alg === header.alg).sort((a, b) => Number(b.kid === header.kid) - Number(a.kid === header.kid));
    for (const c of candidates) {
      try {
        return (await jwtVerify(token, c.key, options(now))).payload;
      } catch (err) {
        lastError = err;
      }
    }
    if (remote) return (await jwtVerify(token, remote, options(now))).payload;
    throw lastError;
  };
  return {
    issuer: ext.issuer,
    async verify(token, now) {
      const payload = await verifySignature(token, now);
      refuseFutureIat(payload, now, settings.clockToleranceSeconds);
      return payload;
    },
  };
}
