import type { ChargeOptions, ChargeResult, DigestPage, NamespaceRecount, NamespaceUsage, QuotaMetadata, ReserveOptions, ReserveResult } from './quota-types.js';
import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import { PER_NAMESPACE_KEYS, QUOTA_SCRIPTS, type QuotaScriptName } from './redis-quota-scripts.js';
import type { Digest } from './types.js';

/*
 * Quota records in Redis (P = keyPrefix), all of a namespace under its `{ns:<name>}` hash tag:
 *
 *   P{ns:<n>}:usage      hash { bytes, digests }
 *   P{ns:<n>}:sizes      hash digest → size: the digests the namespace holds
 *   P{ns:<n>}:holders    zset, score 0, "<digest> <holder>" (holder "b <repo>" | "m <repo>")
 *   P{ns:<n>}:reserved   hash reservation id → "<bytes> <until ms>"
 *   P{quotas}:namespaces zset, score 0, member namespace: every namespace with a record (only grows;
 *                        added before the namespace's first charge, in its own step)
 */

type ScriptRunner = (...args: (string | number)[]) => Promise<unknown>;

export interface RedisQuotaContext {
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  run<T>(what: string, action: () => Promise<T>): Promise<T>;
}

/** Entries per command while a rebuild writes a namespace's new records. */
const REBUILD_BATCH = 1000;

function usageOf(bytes: unknown, digests: unknown, reserved: unknown): NamespaceUsage {
  return { bytes: Number(bytes), digests: Number(digests), reserved: Number(reserved) };
}

export class RedisQuotas implements QuotaMetadata {
  /** Namespaces this process already put in the index: one ZADD per namespace, not per charge. */
  private readonly indexed = new Set<string>();

  constructor(private readonly ctx: RedisQuotaContext) {
    for (const [name, lua] of Object.entries(QUOTA_SCRIPTS)) {
      ctx.client.defineCommand(name, { lua: lua.source, numberOfKeys: lua.keys });
    }
  }

  private script(name: QuotaScriptName): ScriptRunner {
    const fn = (this.ctx.client as unknown as Record<QuotaScriptName, ScriptRunner>)[name];
    return fn.bind(this.ctx.client);
  }

  private nsKeys(ns: string): string[] {
    return PER_NAMESPACE_KEYS.map((kind) => this.ctx.keys.namespace(ns, kind));
  }

  private async index(ns: string): Promise<void> {
    if (this.indexed.has(ns)) return;
    await this.ctx.client.zadd(this.ctx.keys.quotaNamespaces(), 0, ns);
    if (this.indexed.size > 10_000) this.indexed.clear();
    this.indexed.add(ns);
  }

  charge(ns: string, digest: Digest, size: number, holder: string, options: ChargeOptions): Promise<ChargeResult> {
    return this.ctx.run('quotas.charge', async () => {
      await this.index(ns);
      const [ok, added, bytes, digests, reserved] = (await this.script('berthQuotaCharge')(
        ...this.nsKeys(ns),
        digest,
        String(size),
        holder,
        options.limit === undefined ? '' : String(options.limit),
        options.reservation ?? '',
        String(options.now),
      )) as number[];
      const usage = usageOf(bytes, digests, reserved);
      return ok === 1 ? { ok: true, added: added === 1, usage } : { ok: false, usage };
    });
  }

  release(ns: string, digest: Digest, holder: string): Promise<boolean> {
    return this.ctx.run('quotas.release', async () => (await this.script('berthQuotaRelease')(...this.nsKeys(ns), digest, holder)) === 1);
  }

  reserve(ns: string, id: string, bytes: number, options: ReserveOptions): Promise<ReserveResult> {
    return this.ctx.run('quotas.reserve', async () => {
      await this.index(ns);
      const [ok, used, digests, reserved] = (await this.script('berthQuotaReserve')(
        ...this.nsKeys(ns),
        id,
        String(bytes),
        String(options.until),
        options.limit === undefined ? '' : String(options.limit),
        String(options.now),
      )) as number[];
      const usage = usageOf(used, digests, reserved);
      return ok === 1 ? { ok: true, usage } : { ok: false, usage };
    });
  }

  unreserve(ns: string, id: string): Promise<void> {
    return this.ctx.run('quotas.unreserve', async () => {
      await this.ctx.client.hdel(this.ctx.keys.namespace(ns, 'reserved'), id);
    });
  }

  usage(ns: string, now: number): Promise<NamespaceUsage> {
    return this.ctx.run('quotas.usage', async () => {
      const [bytes, digests, reserved] = (await this.script('berthQuotaUsage')(...this.nsKeys(ns), String(now))) as number[];
      return usageOf(bytes, digests, reserved);
    });
  }

  holds(ns: string, digest: Digest): Promise<boolean> {
    return this.ctx.run('quotas.holds', async () => (await this.ctx.client.hexists(this.ctx.keys.namespace(ns, 'sizes'), digest)) === 1);
  }

  digests(ns: string, cursor: string | undefined, count: number): Promise<DigestPage> {
    return this.ctx.run('quotas.digests', async () => {
      const [next, flat] = await this.ctx.client.hscan(this.ctx.keys.namespace(ns, 'sizes'), cursor ?? '0', 'COUNT', Math.max(1, count));
      const digests = [];
      for (let i = 0; i + 1 < flat.length; i += 2) digests.push({ digest: flat[i] as string, size: Number(flat[i + 1]) });
      return next === '0' ? { digests } : { digests, next };
    });
  }

  namespaces(page: { n: number; last?: string | undefined }): Promise<string[]> {
    return this.ctx.run('quotas.namespaces', async () => {
      if (page.n <= 0) return [];
      return this.ctx.client.zrangebylex(this.ctx.keys.quotaNamespaces(), page.last === undefined ? '-' : `(${page.last}`, '+', 'LIMIT', 0, page.n);
    });
  }

  replace(ns: string, entries: NamespaceRecount[]): Promise<void> {
    return this.ctx.run('quotas.replace', async () => {
      await this.index(ns);
      const newSizes = this.ctx.keys.namespace(ns, 'new-sizes');
      const newHolders = this.ctx.keys.namespace(ns, 'new-holders');
      await this.ctx.client.del(newSizes, newHolders);
      // Written in batches beside the live records, then swapped in by one script.
      for (let i = 0; i < entries.length; i += REBUILD_BATCH) {
        const batch = entries.slice(i, i + REBUILD_BATCH);
        await this.ctx.client.hset(newSizes, ...batch.flatMap((e) => [e.digest, String(e.size)]));
        const members = batch.flatMap((e) => e.holders.flatMap((h) => [0, `${e.digest} ${h}`]));
        if (members.length > 0) await this.ctx.client.zadd(newHolders, ...members);
      }
      await this.script('berthQuotaReplace')(...this.nsKeys(ns), newSizes, newHolders);
    });
  }
}
