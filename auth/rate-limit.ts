import { randomBytes } from 'node:crypto';
import { type LoginCounterStore, MemoryLoginCounters } from './login-counters.js';

export interface LoginLimits {
  /** Attempts per (user name, client address) pair within the window. */
  perUserAndAddress: number;
  /** Attempts per client address, over all user names. */
  perAddress: number;
  /** Attempts per user name, over all addresses; not applied to an address the user logged in from lately. */
  perUser: number;
  windowSeconds: number;
  /** How long a correct login makes its address trusted for that user; 0 turns trust off. */
  trustedAddressSeconds: number;
}

/** A counted attempt: its slots are taken; the caller reports how it ended. */
export interface LoginAttempt {
  /** The password was right: give back the slots, clear the pair, trust the address for this user. */
  succeed(): Promise<void>;
  /** The password was wrong: the slots stay taken until they leave the window. */
  fail(): Promise<void>;
  /** The password was never checked (e.g. no capacity): give back the slots. */
  cancel(): Promise<void>;
}

export type Admission = { ok: true; attempt: LoginAttempt } | { ok: false; retryAfter: number; limit: 'user-address' | 'address' | 'user' };

/**
 * Counts login attempts before the password is checked, in a sliding window, so concurrent
 * attempts cannot all pass the check: each one takes a slot (atomically, in the counter store) in
 * every limit that applies to it, and only an attempt holding all its slots is checked.
 * See auth/README.md ("Failed logins") for why the limits are per pair, per address and per user.
 */
export class LoginLimiter {
  constructor(
    private readonly limits: LoginLimits,
    private readonly store: LoginCounterStore = new MemoryLoginCounters(),
    private readonly now: () => number = Date.now,
  ) {}

  async admit(user: string, address: string): Promise<Admission> {
    const now = this.now();
    const windowMs = this.limits.windowSeconds * 1000;
    const trustMs = this.limits.trustedAddressSeconds * 1000;
    const pair = pairKey(user, address);
    const trusted = trustMs > 0 && (await this.store.marked(`trust:${pair}`, now, trustMs));
    const checks: Array<[key: string, limit: number, name: 'user-address' | 'address' | 'user']> = [
      [`pair:${pair}`, this.limits.perUserAndAddress, 'user-address'],
    ];
    // A pair that logged in correctly lately is its own proof: other addresses' failures, counted per
    // user and per address, must not lock it out. Its own failures still count in the pair.
    if (!trusted) {
      checks.push([`addr:${address}`, this.limits.perAddress, 'address']);
      checks.push([`user:${encodeURIComponent(user)}`, this.limits.perUser, 'user']);
    }
    const id = randomBytes(12).toString('base64url');
    const held: string[] = [];
    const giveBack = () => Promise.all(held.map((k) => this.store.release(k, id))).then(() => undefined);
    try {
      for (const [key, limit, name] of checks) {
        const waitMs = await this.store.reserve(key, id, limit, windowMs, now);
        if (waitMs > 0) {
          await giveBack();
          return { ok: false, retryAfter: Math.max(1, Math.ceil(waitMs / 1000)), limit: name };
        }
        held.push(key);
      }
    } catch (err) {
      await giveBack().catch(() => {});
      throw err;
    }
    return {
      ok: true,
      attempt: {
        succeed: async () => {
          await Promise.all([
            this.store.clear(`pair:${pair}`),
            ...held.filter((k) => !k.startsWith('pair:')).map((k) => this.store.release(k, id)),
            trustMs > 0 ? this.store.mark(`trust:${pair}`, this.now(), trustMs) : undefined,
          ]);
        },
        fail: async () => {},
        cancel: giveBack,
      },
    };
  }
}

function pairKey(user: string, address: string): string {
  // encodeURIComponent keeps '@' and braces (Cluster hash tags) out of the user part.
  return `${encodeURIComponent(user)}@${address}`;
}
