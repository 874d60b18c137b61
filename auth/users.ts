import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { FileBacked, writeFileAtomic } from './files.js';
import { readFile } from 'node:fs/promises';

/** Prefix that marks a robot account's login name; user names may not start with it. */
export const ROBOT_PREFIX = 'robot+';

/** User names the CLI accepts: a lowercase repository path component, so `<user>/` namespaces work. */
export const USER_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;
const NEW_HASH_COST = 10;

export interface HtpasswdEntries {
  users: Map<string, string>;
  /** Lines that were not bcrypt entries (other hash schemes are refused, not silently accepted). */
  skipped: string[];
}

export function parseHtpasswd(text: string | undefined): HtpasswdEntries {
  const users = new Map<string, string>();
  const skipped: string[] = [];
  for (const raw of (text ?? '').split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    const hash = line.slice(colon + 1);
    if (name === '' || !BCRYPT.test(hash)) {
      skipped.push(name || '(malformed line)');
      continue;
    }
    users.set(name, hash);
  }
  return { users, skipped };
}

export function formatHtpasswd(users: Map<string, string>): string {
  return [...users].map(([name, hash]) => `${name}:${hash}\n`).join('');
}

/** A short digest of a user's password hash: refresh tokens carry it, so a new password voids them. */
export function credentialFingerprint(hash: string): string {
  return createHash('sha256').update(hash).digest('base64url').slice(0, 22);
}

export type LoginResult = { ok: true; fingerprint: string } | { ok: false };

/** Where bcrypt runs; the server passes a worker pool (password-pool.ts), the CLI the in-thread default. */
export interface PasswordHasher {
  compare(password: string, hash: string): Promise<boolean>;
  hash(password: string, cost: number): Promise<string>;
}

const inThread: PasswordHasher = {
  compare: (password, hash) => bcrypt.compare(password, hash),
  hash: (password, cost) => bcrypt.hash(password, cost),
};

/** Users from an htpasswd file (bcrypt only, as written by `htpasswd -B`), reloaded when it changes. */
export class UserStore {
  private readonly file: FileBacked<HtpasswdEntries>;
  private dummyHash: Promise<string> | undefined;
  private dummyCost = 0;

  constructor(
    readonly path: string,
    private readonly warn: (msg: string) => void = () => {},
    private readonly hasher: PasswordHasher = inThread,
  ) {
    this.file = new FileBacked(
      path,
      (text) => {
        const parsed = parseHtpasswd(text);
        if (parsed.skipped.length > 0)
          this.warn(`htpasswd ${path}: ignoring ${parsed.skipped.length} entries without a bcrypt hash (${parsed.skipped.join(', ')})`);
        return parsed;
      },
      (err) => this.warn(`htpasswd ${path}: reload failed: ${(err as Error).message}`),
    );
  }

  load(): Promise<HtpasswdEntries> {
    return this.file.load();
  }

  async verify(username: string, password: string): Promise<LoginResult> {
    const { users } = await this.file.get();
    const hash = users.get(username);
    // An unknown name still costs one bcrypt comparison at the cost the file uses, so timing
    // does not reveal which names exist.
    const ok = await this.hasher.compare(password, hash ?? (await this.dummy(users)));
    return ok && hash !== undefined ? { ok: true, fingerprint: credentialFingerprint(hash) } : { ok: false };
  }

  private dummy(users: Map<string, string>): Promise<string> {
    const first = users.values().next().value;
    const cost = first === undefined ? NEW_HASH_COST : Number(first.slice(4, 6));
    if (this.dummyHash === undefined || this.dummyCost !== cost) {
      this.dummyCost = cost;
      const made = this.hasher.hash(randomBytes(16).toString('hex'), cost);
      // A failed attempt (e.g. a full pool) must not be cached.
      made.catch(() => {
        if (this.dummyHash === made) this.dummyHash = undefined;
      });
      this.dummyHash = made;
    }
    return this.dummyHash;
  }

  /** The current fingerprint of a user, or undefined once the user is gone. */
  async fingerprint(username: string): Promise<string | undefined> {
    const hash = (await this.file.get()).users.get(username);
    return hash === undefined ? undefined : credentialFingerprint(hash);
  }
}

async function readEntries(path: string): Promise<Map<string, string>> {
  try {
    return parseHtpasswd(await readFile(path, 'utf8')).users;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
}

/** Adds a user or replaces their password. Returns true when the user is new. */
export async function setUserPassword(path: string, username: string, password: string, cost = NEW_HASH_COST): Promise<boolean> {
  const users = await readEntries(path);
  const fresh = !users.has(username);
  users.set(username, await bcrypt.hash(password, cost));
  await writeFileAtomic(path, formatHtpasswd(users));
  return fresh;
}

export async function removeUser(path: string, username: string): Promise<boolean> {
  const users = await readEntries(path);
  if (!users.delete(username)) return false;
  await writeFileAtomic(path, formatHtpasswd(users));
  return true;
}

export async function listUsers(path: string): Promise<string[]> {
  return [...(await readEntries(path)).keys()].sort();
}
