import { randomBytes } from 'node:crypto';
import type { BlobClaim, BlobPin, GcMetadata, GcState, GcStatus, GcWork, QueuedGcWork, RepositoryHold, UnusedManifestRule } from './gc-types.js';
import { manifestDeletedDraft } from './event-records.js';
import type { RedisClient } from './redis-client.js';
import { markPending } from './redis-events.js';
import { GC_SCRIPTS, PER_BLOB_KEYS, QUEUE_KEYS, type GcScriptName } from './redis-gc-scripts.js';
import type { RedisKeys } from './redis-keys.js';
import type { Digest, ManifestRecord } from './types.js';

/*
 * Garbage collection's records in Redis (P = keyPrefix), next to the store's own keys (redis.ts):
 *
 *   P{blob:<d>}:repos     zset, score 0, member repository: the holders (a link, a manifest referencing d,
 *                         or d itself as a manifest); added before the repository change, removed only
 *                         by quarantineBlob (checked holders) and finishPurge
 *   P{blob:<d>}:touch     hash { v: random version, at: ms of the last use }; absent = version ''
 *   P{blob:<d>}:gc        hash { state: quarantined | deleting, since, qv: version at quarantine, token,
 *                         until: lease }; absent = live
 *   P{blob:<d>}:pins      hash pin id → until (ms)
 *   P{repo:<r>}:refs      zset "<digest> <manifest>": the manifests of r referencing digest (a set: re-puts add nothing)
 *   P{repo:<r>}:untagged  hash digest → ms when a tag last left it
 *   P{gc}:queue           zset, score due, member "b <digest>" | "m <repo> <digest>"
 *   P{gc}:tokens          hash queue member → token of its last enqueue
 *   P{gc}:complete        the completeness marker's reason
 *
 * A version is a fresh random string per use, made here rather than in Lua (a script's random
 * generator is not to be relied on for uniqueness), so a decision read before a use never matches after it.
 */

type ScriptRunner = (...args: (string | number)[]) => Promise<unknown>;

/** What RedisGc borrows from its RedisStore: the connection, the key names and the error mapping. */
export interface RedisGcContext {
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  run<T>(what: string, action: () => Promise<T>): Promise<T>;
}

function newVersion(): string {
  return randomBytes(12).toString('base64url');
}

function queueItem(work: GcWork): string {
  return work.kind === 'blob' ? `b ${work.digest}` : `m ${work.repo} ${work.digest}`;
}

/** Neither repository names nor digests contain a space, so the last one splits "m <repo> <digest>". */
function parseQueueItem(item: string, due: number, token: string): QueuedGcWork | undefined {
  if (item.startsWith('b ')) return { kind: 'blob', digest: item.slice(2), due, token };
  if (!item.startsWith('m ')) return undefined;
  const split = item.lastIndexOf(' ');
  if (split <= 2) return undefined;
  return { kind: 'manifest', repo: item.slice(2, split), digest: item.slice(split + 1), due, token };
}

export class RedisGc implements GcMetadata {
  constructor(private readonly ctx: RedisGcContext) {
    for (const [name, lua] of Object.entries(GC_SCRIPTS)) {
      ctx.client.defineCommand(name, { lua: lua.source, numberOfKeys: lua.keys });
    }
  }

  private script(name: GcScriptName): ScriptRunner {
    const fn = (this.ctx.client as unknown as Record<GcScriptName, ScriptRunner>)[name];
    return fn.bind(this.ctx.client);
  }

  private blobKeys(digest: Digest): string[] {
    return PER_BLOB_KEYS.map((kind) => this.ctx.keys.blob(digest, kind));
  }

  private queueKeys(): string[] {
    return QUEUE_KEYS.map((kind) => this.ctx.keys.gc(kind));
  }

  touchBlobs(digests: Digest[], now: number): Promise<void> {
    return this.ctx.run('touchBlobs', async () => {
      // One key per digest, each in its own slot: sent at once rather than as a transaction.
      await Promise.all([...new Set(digests)].map((d) => this.ctx.client.hset(this.ctx.keys.blob(d, 'touch'), 'v', newVersion(), 'at', String(now))));
    });
  }

  pinBlobs(digests: Digest[], pin: BlobPin): Promise<Digest[]> {
    return this.ctx.run('pinBlobs', async () => {
      const unique = [...new Set(digests)];
      const pinned = await Promise.all(
        unique.map((d) => this.script('berthGcPin')(...this.blobKeys(d), pin.id, String(pin.until), newVersion(), String(pin.now))),
      );
      return unique.filter((_, i) => pinned[i] !== 1);
    });
  }

  unpinBlobs(digests: Digest[], pinId: string): Promise<Digest[]> {
    return this.ctx.run('unpinBlobs', async () => {
      const unique = [...new Set(digests)];
      const removed = await Promise.all(unique.map((d) => this.ctx.client.hdel(this.ctx.keys.blob(d, 'pins'), pinId)));
      return unique.filter((_, i) => removed[i] === 0);
    });
  }

  status(digest: Digest): Promise<GcStatus> {
    return this.ctx.run('status', async () => {
      const [state, since, at] = (await this.script('berthGcStatus')(...this.blobKeys(digest))) as [string, string, string];
      const result: GcStatus = { state: state === '' ? 'live' : (state as GcState) };
      if (at !== '') result.lastTouch = Number(at);
      if (state !== '' && since !== '') result.since = Number(since);
      return result;
    });
  }

  claimBlob(digest: Digest, touchedBefore: number, now: number): Promise<BlobClaim> {
    return this.ctx.run('claimBlob', async () => {
      const reply = (await this.script('berthGcClaim')(...this.blobKeys(digest), String(touchedBefore), String(now))) as [string, string, string[]?];
      const [kind, value] = reply;
      switch (kind) {
        case 'deleting':
          return { ok: false, reason: 'deleting', until: Number(value) };
        case 'quarantined':
          return { ok: false, reason: 'quarantined', since: Number(value) };
        case 'pinned':
          return { ok: false, reason: 'pinned', retryAt: Number(value) };
        case 'touched':
          // As long after the last touch as the caller's window is wide: the first moment it passes.
          return { ok: false, reason: 'touched', retryAt: Number(value) + (now - touchedBefore) + 1 };
        case 'ok':
          return { ok: true, version: value, holders: reply[2] ?? [] };
        default:
          // Never read an unknown answer as a go-ahead to delete.
          throw new Error(`unexpected claim reply ${JSON.stringify(kind)}`);
      }
    });
  }

  repositoryHolds(repo: string, digest: Digest): Promise<RepositoryHold> {
    return this.ctx.run('repositoryHolds', async () => {
      const [refs, manifest, link] = (await this.script('berthGcRepositoryHolds')(...this.ctx.keys.repoKeys(repo), digest)) as [number, number, number];
      return { manifestRefs: refs, manifest: manifest === 1, link: link === 1 };
    });
  }

  quarantineBlob(digest: Digest, version: string, released: string[], now: number): Promise<boolean> {
    return this.ctx.run(
      'quarantineBlob',
      async () => (await this.script('berthGcQuarantine')(...this.blobKeys(digest), version, String(now), ...released)) === 1,
    );
  }

  beginPurge(digest: Digest, token: string, leaseUntil: number, quarantinedBefore: number, now: number): Promise<string[] | undefined> {
    return this.ctx.run('beginPurge', async () => {
      const holders = (await this.script('berthGcBeginPurge')(...this.blobKeys(digest), token, String(leaseUntil), String(quarantinedBefore), String(now))) as
        string[] | null;
      return holders ?? undefined;
    });
  }

  unlinkOrphan(repo: string, digest: Digest): Promise<boolean> {
    return this.ctx.run('unlinkOrphan', async () => (await this.script('berthGcUnlinkOrphan')(...this.ctx.keys.repoKeys(repo), digest)) === 1);
  }

  finishPurge(digest: Digest, token: string): Promise<boolean> {
    return this.ctx.run('finishPurge', async () => (await this.script('berthGcFinishPurge')(...this.blobKeys(digest), token)) === 1);
  }

  abortPurge(digest: Digest, token: string): Promise<void> {
    return this.ctx.run('abortPurge', async () => {
      await this.script('berthGcAbortPurge')(...this.blobKeys(digest), token);
    });
  }

  deleteManifestIfUnused(repo: string, digest: Digest, rule: UnusedManifestRule): Promise<ManifestRecord | undefined> {
    return this.ctx.run('deleteManifestIfUnused', async () => {
      const event = rule.dryRun === true ? undefined : rule.event;
      if (event !== undefined) await markPending(this.ctx.client, this.ctx.keys, repo);
      const json = (await this.script('berthGcDeleteManifestIfUnused')(
        ...this.ctx.keys.repoKeys(repo),
        digest,
        rule.untaggedBefore === undefined ? '' : String(rule.untaggedBefore),
        rule.orphanReferrers ? '1' : '0',
        rule.dryRun ? '1' : '0',
        event === undefined ? '' : JSON.stringify(manifestDeletedDraft(event, repo, digest)),
      )) as string | null;
      return json === null ? undefined : (JSON.parse(json) as ManifestRecord);
    });
  }

  enqueue(work: GcWork[]): Promise<void> {
    return this.ctx.run('enqueue', async () => {
      if (work.length === 0) return;
      await this.script('berthGcEnqueue')(...this.queueKeys(), ...work.flatMap((w) => [queueItem(w), String(w.due), newVersion()]));
    });
  }

  takeDue(now: number, limit: number): Promise<QueuedGcWork[]> {
    return this.ctx.run('takeDue', async () => {
      if (limit <= 0) return [];
      const flat = (await this.script('berthGcTakeDue')(...this.queueKeys(), String(now), String(limit))) as string[];
      const taken: QueuedGcWork[] = [];
      for (let i = 0; i + 2 < flat.length; i += 3) {
        const work = parseQueueItem(flat[i] as string, Number(flat[i + 1]), flat[i + 2] as string);
        if (work !== undefined) taken.push(work);
      }
      return taken;
    });
  }

  complete(work: QueuedGcWork[]): Promise<void> {
    return this.ctx.run('complete', async () => {
      if (work.length === 0) return;
      await this.script('berthGcComplete')(...this.queueKeys(), ...work.flatMap((w) => [queueItem(w), w.token]));
    });
  }

  queueSize(now: number): Promise<{ queued: number; due: number }> {
    return this.ctx.run('queueSize', async () => {
      const queue = this.ctx.keys.gc('queue');
      // One transaction, so `due` never counts an item `queued` missed.
      const results = await this.ctx.client.multi().zcard(queue).zcount(queue, '-inf', String(now)).exec();
      if (results === null) throw new Error('transaction aborted');
      for (const [err] of results) if (err) throw err;
      const [[, queued], [, due]] = results as [[null, number], [null, number]];
      return { queued, due };
    });
  }

  completeness(): Promise<string | undefined> {
    return this.ctx.run('completeness', async () => (await this.ctx.client.get(this.ctx.keys.gc('complete'))) ?? undefined);
  }

  markComplete(reason: string): Promise<void> {
    return this.ctx.run('markComplete', async () => {
      await this.ctx.client.set(this.ctx.keys.gc('complete'), reason);
    });
  }

  isEmpty(): Promise<boolean> {
    return this.ctx.run('isEmpty', async () => {
      // The catalog only grows and every open session is in the age index: both absent means no
      // repository was ever made and no upload is open.
      const [catalog, uploads] = await Promise.all([this.ctx.client.exists(this.ctx.keys.catalog()), this.ctx.client.exists(this.ctx.keys.uploadAge())]);
      return catalog === 0 && uploads === 0;
    });
  }
}
