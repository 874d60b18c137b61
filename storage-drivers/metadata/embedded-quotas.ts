import { after, key, lastPart, under, type Db } from './embedded-keys.js';
import type { ChargeOptions, ChargeResult, DigestPage, NamespaceRecount, NamespaceUsage, QuotaMetadata, ReserveOptions, ReserveResult } from './quota-types.js';
import type { Digest } from './types.js';

/*
 * The embedded store's quota records (sub-databases of the same lmdb environment; every change is one
 * action of the group commit):
 *   quotaUsage     ns                → { bytes, digests }   presence = the namespace has a record
 *   quotaDigests   ns \0 digest      → { size, holders }    holders "b <repo>" | "m <repo>"
 *   quotaReserved  ns \0 id          → { bytes, until }
 */

interface UsageRecord {
  bytes: number;
  digests: number;
}

interface DigestRecord {
  size: number;
  holders: string[];
}

interface Reservation {
  bytes: number;
  until: number;
}

export interface EmbeddedQuotaDbs {
  quotaUsage: Db<UsageRecord>;
  quotaDigests: Db<DigestRecord>;
  quotaReserved: Db<Reservation>;
}

export interface EmbeddedQuotaContext {
  dbs: EmbeddedQuotaDbs;
  write<T>(what: string, action: () => T): Promise<T>;
  read<T>(what: string, action: () => T): Promise<T>;
}

export class EmbeddedQuotas implements QuotaMetadata {
  private readonly db: EmbeddedQuotaDbs;

  constructor(private readonly ctx: EmbeddedQuotaContext) {
    this.db = ctx.dbs;
  }

  charge(ns: string, digest: Digest, size: number, holder: string, options: ChargeOptions): Promise<ChargeResult> {
    return this.ctx.write('quotas.charge', (): ChargeResult => {
      const current = this.db.quotaDigests.get(key(ns, digest));
      const used = this.usedOf(ns);
      const others = this.reservedOf(ns, options.now, options.reservation, true);
      if (current === undefined && options.limit !== undefined && used.bytes + others + size > options.limit) {
        return { ok: false, usage: { ...used, reserved: others } };
      }
      if (current === undefined) {
        this.db.quotaDigests.put(key(ns, digest), { size, holders: [holder] });
        used.bytes += size;
        used.digests += 1;
        this.db.quotaUsage.put(key(ns), used);
      } else if (!current.holders.includes(holder)) {
        this.db.quotaDigests.put(key(ns, digest), { ...current, holders: [...current.holders, holder] });
      } else if (this.db.quotaUsage.get(key(ns)) === undefined) {
        this.db.quotaUsage.put(key(ns), used);
      }
      if (options.reservation !== undefined) this.db.quotaReserved.remove(key(ns, options.reservation));
      return { ok: true, added: current === undefined, usage: { ...used, reserved: others } };
    });
  }

  release(ns: string, digest: Digest, holder: string): Promise<boolean> {
    return this.ctx.write('quotas.release', () => {
      const current = this.db.quotaDigests.get(key(ns, digest));
      if (current === undefined || !current.holders.includes(holder)) return false;
      const holders = current.holders.filter((h) => h !== holder);
      if (holders.length > 0) {
        this.db.quotaDigests.put(key(ns, digest), { ...current, holders });
        return false;
      }
      this.db.quotaDigests.remove(key(ns, digest));
      const used = this.usedOf(ns);
      this.db.quotaUsage.put(key(ns), { bytes: used.bytes - current.size, digests: used.digests - 1 });
      return true;
    });
  }

  reserve(ns: string, id: string, bytes: number, options: ReserveOptions): Promise<ReserveResult> {
    return this.ctx.write('quotas.reserve', (): ReserveResult => {
      const used = this.usedOf(ns);
      const others = this.reservedOf(ns, options.now, id, true);
      const usage = { ...used, reserved: others };
      if (options.limit !== undefined && used.bytes + others + bytes > options.limit) return { ok: false, usage };
      if (this.db.quotaUsage.get(key(ns)) === undefined) this.db.quotaUsage.put(key(ns), used);
      this.db.quotaReserved.put(key(ns, id), { bytes, until: options.until });
      return { ok: true, usage };
    });
  }

  unreserve(ns: string, id: string): Promise<void> {
    return this.ctx.write('quotas.unreserve', () => {
      this.db.quotaReserved.remove(key(ns, id));
    });
  }

  usage(ns: string, now: number): Promise<NamespaceUsage> {
    return this.ctx.read('quotas.usage', () => ({ ...this.usedOf(ns), reserved: this.reservedOf(ns, now, undefined) }));
  }

  holds(ns: string, digest: Digest): Promise<boolean> {
    return this.ctx.read('quotas.holds', () => this.db.quotaDigests.get(key(ns, digest)) !== undefined);
  }

  digests(ns: string, cursor: string | undefined, count: number): Promise<DigestPage> {
    return this.ctx.read('quotas.digests', () => {
      const range = under(ns);
      const start = cursor === undefined ? range.start : after(ns, cursor);
      const digests = [];
      for (const { key: k, value } of this.db.quotaDigests.getRange({ start, end: range.end, limit: Math.max(1, count) + 1 })) {
        digests.push({ digest: lastPart(k, range.start.length), size: value.size });
      }
      if (digests.length <= Math.max(1, count)) return { digests };
      digests.pop();
      return { digests, next: (digests[digests.length - 1] as { digest: string }).digest };
    });
  }

  namespaces(page: { n: number; last?: string | undefined }): Promise<string[]> {
    return this.ctx.read('quotas.namespaces', () => {
      if (page.n <= 0) return [];
      const start = page.last === undefined ? undefined : Buffer.from(`${page.last}\0`, 'utf8');
      return Array.from(this.db.quotaUsage.getKeys({ ...(start ? { start } : {}), limit: page.n }), (k) => k.toString('utf8'));
    });
  }

  replace(ns: string, entries: NamespaceRecount[]): Promise<void> {
    return this.ctx.write('quotas.replace', () => {
      for (const k of this.db.quotaDigests.getKeys(under(ns))) this.db.quotaDigests.remove(k);
      let bytes = 0;
      const seen = new Set<string>();
      for (const e of entries) {
        if (seen.has(e.digest)) continue;
        seen.add(e.digest);
        bytes += e.size;
        this.db.quotaDigests.put(key(ns, e.digest), { size: e.size, holders: [...new Set(e.holders)] });
      }
      this.db.quotaUsage.put(key(ns), { bytes, digests: seen.size });
    });
  }

  private usedOf(ns: string): UsageRecord {
    const u = this.db.quotaUsage.get(key(ns));
    return { bytes: u?.bytes ?? 0, digests: u?.digests ?? 0 };
  }

  /** Live reservations of `ns` at `now`, except `except`; with `clear` (in a write) expired ones are removed on the way. */
  private reservedOf(ns: string, now: number, except: string | undefined, clear = false): number {
    let sum = 0;
    const prefix = under(ns);
    for (const { key: k, value } of this.db.quotaReserved.getRange(prefix)) {
      if (value.until <= now) {
        if (clear) this.db.quotaReserved.remove(k);
      } else if (lastPart(k, prefix.start.length) !== except) sum += value.bytes;
    }
    return sum;
  }
}
