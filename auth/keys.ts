import { readFile, rm, stat, open, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { type CryptoKey, type JWK, calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, importJWK, importPKCS8 } from 'jose';
import { z } from 'zod';
import type { SigningAlgorithm } from './config.js';
import { FileBacked, writeFileAtomic } from './files.js';

const keyEntrySchema = z
  .object({
    kid: z.string().min(1),
    alg: z.enum(['ES256', 'RS256', 'EdDSA']),
    publicJwk: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
    retiredAt: z.string().nullable(),
    /** True when the private key lives in a configured file rather than in keyDir. */
    external: z.boolean().default(false),
  })
  .strict();
type KeyEntry = z.infer<typeof keyEntrySchema>;
const stateSchema = z.object({ keys: z.array(keyEntrySchema) }).strict();
type KeyState = z.infer<typeof stateSchema>;

function parseState(text: string | undefined): KeyState {
  return text === undefined || text.trim() === '' ? { keys: [] } : stateSchema.parse(JSON.parse(text));
}

export interface KeyStoreOptions {
  keyDir: string;
  algorithm: SigningAlgorithm;
  /** A configured PKCS#8 private key; without it keys are generated and kept in keyDir. */
  keyFile?: string | undefined;
  rotateAfterDays?: number | undefined;
  /** How long after retirement a key still verifies tokens: the longest token lifetime plus skew. */
  retainSeconds: number;
  now?: (() => number) | undefined;
  warn?: ((msg: string) => void) | undefined;
}

export interface SigningKey {
  kid: string;
  alg: SigningAlgorithm;
  key: CryptoKey;
}

/**
 * Signing keys: one active key signs; retired keys keep only their public half and verify tokens
 * until the longest lifetime they could have signed has passed. State lives in keyDir/keys.json
 * and is re-read when it changes, so several processes on one dataDir agree on the keys.
 */
export class KeyStore {
  private readonly stateFile: FileBacked<KeyState>;
  private readonly statePath: string;
  private readonly now: () => number;
  private readonly imported = new Map<string, CryptoKey>();
  private signing: SigningKey | undefined;

  constructor(private readonly options: KeyStoreOptions) {
    this.statePath = join(options.keyDir, 'keys.json');
    this.now = options.now ?? Date.now;
    const warn = options.warn ?? (() => {});
    // Verification looks at the state at most once a second (an unknown kid forces a look), so a
    // busy registry does not stat the file per request; signing always looks.
    this.stateFile = new FileBacked(this.statePath, parseState, (err) => warn(`key state ${this.statePath}: ${(err as Error).message}`), 1000);
  }

  async init(): Promise<void> {
    await mkdir(this.options.keyDir, { recursive: true, mode: 0o700 });
    await this.withLock(async () => {
      const state = await this.stateFile.load();
      if (this.options.keyFile) {
        await this.adoptConfiguredKey(state);
        return;
      }
      const active = activeEntry(state);
      const tooOld =
        active !== undefined &&
        this.options.rotateAfterDays !== undefined &&
        this.now() - Date.parse(active.createdAt) > this.options.rotateAfterDays * 86_400_000;
      if (!active || active.external || active.alg !== this.options.algorithm || tooOld || !(await exists(this.pemPath(active.kid)))) {
        await this.rotateLocked(state);
      }
    });
    await this.signingKey();
  }

  /** Makes a fresh key active and retires the current one (it keeps verifying for retainSeconds). */
  async rotate(): Promise<string> {
    if (this.options.keyFile) throw new Error('the signing key comes from auth.signing.keyFile; replace that file to rotate');
    let kid = '';
    await this.withLock(async () => {
      kid = await this.rotateLocked(await this.stateFile.load());
    });
    await this.signingKey();
    return kid;
  }

  /** Rotates when the active generated key is older than rotateAfterDays (called periodically). */
  async rotateIfDue(): Promise<boolean> {
    if (this.options.keyFile || this.options.rotateAfterDays === undefined) return false;
    let rotated = false;
    await this.withLock(async () => {
      const state = await this.stateFile.load();
      const active = activeEntry(state);
      if (active && this.now() - Date.parse(active.createdAt) <= this.options.rotateAfterDays! * 86_400_000) return;
      await this.rotateLocked(state);
      rotated = true;
    });
    if (rotated) await this.signingKey();
    return rotated;
  }

  /** The key to sign with, following a rotation done by another process. */
  async signingKey(): Promise<SigningKey> {
    const state = await this.stateFile.get({ force: true });
    const active = activeEntry(state);
    if (!active) throw new Error('no active signing key');
    if (this.signing?.kid === active.kid) return this.signing;
    const pem = await readFile(this.options.keyFile && active.external ? this.options.keyFile : this.pemPath(active.kid), 'utf8');
    this.signing = { kid: active.kid, alg: active.alg, key: await importPKCS8(pem, active.alg) };
    return this.signing;
  }

  /**
   * The public key for `kid`, if that key may still verify a token of the given lifetime: the
   * active key always, a retired one only within `lifetimeSeconds` of its retirement.
   */
  async verificationKey(kid: string, lifetimeSeconds: number): Promise<{ key: CryptoKey; alg: SigningAlgorithm } | undefined> {
    let entry = (await this.stateFile.get()).keys.find((k) => k.kid === kid);
    entry ??= (await this.stateFile.get({ force: true })).keys.find((k) => k.kid === kid);
    if (!entry) return undefined;
    if (entry.retiredAt !== null && Date.parse(entry.retiredAt) + lifetimeSeconds * 1000 <= this.now()) return undefined;
    let key = this.imported.get(kid);
    if (!key) {
      key = (await importJWK(entry.publicJwk as JWK, entry.alg)) as CryptoKey;
      this.imported.set(kid, key);
    }
    return { key, alg: entry.alg };
  }

  /** Public keys for the JWKS endpoint: the active one and those retired within retainSeconds. */
  async jwks(): Promise<{ keys: JWK[] }> {
    const state = await this.stateFile.get();
    return {
      keys: state.keys.filter((k) => this.retained(k)).map((k) => ({ ...(k.publicJwk as JWK), kid: k.kid, alg: k.alg, use: 'sig' })),
    };
  }

  private retained(k: KeyEntry): boolean {
    return k.retiredAt === null || Date.parse(k.retiredAt) + this.options.retainSeconds * 1000 > this.now();
  }

  private pemPath(kid: string): string {
    return join(this.options.keyDir, `${kid}.pem`);
  }

  private async adoptConfiguredKey(state: KeyState): Promise<void> {
    const pem = await readFile(this.options.keyFile as string, 'utf8');
    const priv = await importPKCS8(pem, this.options.algorithm, { extractable: true });
    const publicJwk = publicHalf(await exportJWK(priv));
    const kid = await calculateJwkThumbprint(publicJwk);
    const active = activeEntry(state);
    if (active?.kid === kid) return;
    await this.save(state, { kid, alg: this.options.algorithm, publicJwk, createdAt: new Date(this.now()).toISOString(), retiredAt: null, external: true });
  }

  private async rotateLocked(state: KeyState): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair(this.options.algorithm, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const fh = await open(this.pemPath(kid), 'wx', 0o600);
    try {
      await fh.writeFile(await exportPKCS8(privateKey));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.save(state, { kid, alg: this.options.algorithm, publicJwk, createdAt: new Date(this.now()).toISOString(), retiredAt: null, external: false });
    return kid;
  }

  /** Retires the active key, adds `fresh`, drops keys past retention and their private halves. */
  private async save(state: KeyState, fresh: KeyEntry): Promise<void> {
    const nowIso = new Date(this.now()).toISOString();
    const keys: KeyEntry[] = [];
    for (const k of state.keys) {
      const entry = k.retiredAt === null ? { ...k, retiredAt: nowIso } : k;
      // A retired key never signs again, so its private half goes at once.
      if (!entry.external) await rm(this.pemPath(entry.kid), { force: true });
      if (this.retained(entry)) keys.push(entry);
    }
    keys.push(fresh);
    await writeFileAtomic(this.statePath, `${JSON.stringify({ keys }, null, 2)}\n`);
    await this.stateFile.load();
  }

  /** A lock file serialises key generation between processes sharing keyDir. */
  private async withLock(fn: () => Promise<void>): Promise<void> {
    const lock = join(this.options.keyDir, 'keys.lock');
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const fh = await open(lock, 'wx', 0o600);
        await fh.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const age = await stat(lock).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (age > 30_000) await rm(lock, { force: true });
        else if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
        else await delay(25);
      }
    }
    try {
      await fn();
    } finally {
      await rm(lock, { force: true });
    }
  }
}

function activeEntry(state: KeyState): KeyEntry | undefined {
  return state.keys.find((k) => k.retiredAt === null);
}

function publicHalf(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
