import { randomUUID } from 'node:crypto';
import { ageKey, key, lastPart, under, type Db } from './embedded-keys.js';
import type { BlobClaim, BlobPin, GcMetadata, GcStatus, GcWork, QueuedGcWork, RepositoryHold, UnusedManifestRule } from './gc-types.js';
import type { EventOrigin } from './event-types.js';
import type { Digest, ManifestRecord } from './types.js';

/*
 * The embedded store's garbage-collection records (sub-databases of the same lmdb environment, so a
 * decision and the repository keys it depends on change in one write transaction):
 *   blobRepos  digest \0 repo         → true   the holders (shared with automatic mounts)
 *   touches    digest                 → { v, at }  version and last use
 *   gcState    digest                 → { state, since, qv?, token?, until? }  absent = live
 *   pins       digest \0 pinId        → until
 *   refs       repo \0 digest \0 manifest → true   the manifests in repo that reference digest
 *   untagged   repo \0 digest         → ms a tag last left the manifest
 *   gcQueue    item                   → { due, token }   item = "b <digest>" | "m <repo> <digest>"
 *   gcDue      due(6 bytes BE) item   → true
 *   meta       name                   → string (the completeness marker)
 */

interface Touch {
  v: string;
  at: number;
}

interface StateRecord {
  state: 'quarantined' | 'deleting';
  since: number;
  qv?: string;
  token?: string;
  until?: number;
}

interface QueueEntry {
  due: number;
  token: string;
}

export interface EmbeddedGcDbs {
  blobRepos: Db<true>;
  blobs: Db<number>;
  manifests: Db<ManifestRecord>;
  tagsOf: Db<true>;
  missing: Db<number>;
  repos: Db<true>;
  uploads: Db<unknown>;
  touches: Db<Touch>;
  gcState: Db<StateRecord>;
  pins: Db<number>;
  refs: Db<true>;
  untagged: Db<number>;
  gcQueue: Db<QueueEntry>;
  gcDue: Db<true>;
  meta: Db<string>;
}

export interface EmbeddedGcContext {
  dbs: EmbeddedGcDbs;
  write<T>(what: string, action: () => T): Promise<T>;
  read<T>(what: string, action: () => T): Promise<T>;
  /** Inside a write transaction: deleteManifest's removals, and its manifest_deleted record with `event`. */
  removeManifest(repo: string, digest: Digest, record: ManifestRecord, event: EventOrigin | undefined): void;
}

function itemOf(work: GcWork): string {
  return work.kind === 'blob' ? `b ${work.digest}` : `m ${work.repo} ${work.digest}`;
}

function workOf(item: string, entry: QueueEntry): QueuedGcWork | undefined {
  const parts = item.split(' ');
  if (parts[0] === 'b' && parts.length === 2) return { kind: 'blob', digest: parts[1] as string, due: entry.due, token: entry.token };
  if (parts[0] === 'm' && parts.length === 3)
    return { kind: 'manifest', repo: parts[1] as string, digest: parts[2] as string, due: entry.due, token: entry.token };
  return undefined;
}

function dueKey(due: number, item: string): Buffer {
  return ageKey(due, item);
}

function hasAny(keys: Iterable<unknown>): boolean {
  for (const _ of keys) return true;
  return false;
}

/** The distinct digests a manifest references: counted once per manifest, whatever repeats. */
export function distinctReferences(record: ManifestRecord): string[] {
  return [...new Set(record.references)];
}

export class EmbeddedGc implements GcMetadata {
  private readonly db: EmbeddedGcDbs;

  constructor(private readonly ctx: EmbeddedGcContext) {
    this.db = ctx.dbs;
  }

  touchBlobs(digests: Digest[], now: number): Promise<void> {
    if (digests.length === 0) return Promise.resolve();
    // Through the group commit like every write: lmdb's own async writes beside synchronous
    // transactions crashed a process (an mdb_page_dirty assertion) with two processes on one store.
    return this.ctx.write('touchBlobs', () => {
      for (const d of digests) this.db.touches.put(key(d), { v: randomUUID(), at: now });
    });
  }

  pinBlobs(digests: Digest[], pin: BlobPin): Promise<Digest[]> {
    return this.ctx.write('pinBlobs', () => {
      const refused: Digest[] = [];
      for (const d of new Set(digests)) {
        const state = this.db.gcState.get(key(d));
        if (state?.state === 'deleting') {
          refused.push(d);
          continue;
        }
        if (state?.state === 'quarantined') this.db.gcState.remove(key(d));
        this.db.pins.put(key(d, pin.id), pin.until);
        this.db.touches.put(key(d), { v: randomUUID(), at: pin.now });
      }
      return refused;
    });
  }

  unpinBlobs(digests: Digest[], pinId: string): Promise<Digest[]> {
    return this.ctx.write('unpinBlobs', () => {
      const lost: Digest[] = [];
      for (const d of new Set(digests)) {
        if (this.db.pins.get(key(d, pinId)) === undefined) lost.push(d);
        else this.db.pins.remove(key(d, pinId));
      }
      return lost;
    });
  }

  status(digest: Digest): Promise<GcStatus> {
    return this.ctx.read('gcStatus', () => {
      const state = this.db.gcState.get(key(digest));
      const touch = this.db.touches.get(key(digest));
      const status: GcStatus = { state: state?.state ?? 'live' };
      if (touch) status.lastTouch = touch.at;
      if (state) status.since = state.since;
      return status;
    });
  }

  claimBlob(digest: Digest, touchedBefore: number, now: number): Promise<BlobClaim> {
    return this.ctx.read('claimBlob', (): BlobClaim => {
      const state = this.db.gcState.get(key(digest));
      if (state?.state === 'deleting') return { ok: false, reason: 'deleting', until: state.until ?? 0 };
      if (state?.state === 'quarantined') return { ok: false, reason: 'quarantined', since: state.since };
      const pinnedUntil = this.pinnedUntil(digest, now);
      if (pinnedUntil !== undefined) return { ok: false, reason: 'pinned', retryAt: pinnedUntil };
      const touch = this.db.touches.get(key(digest));
      if (touch && touch.at >= touchedBefore) return { ok: false, reason: 'touched', retryAt: touch.at + (now - touchedBefore) + 1 };
      return { ok: true, version: touch?.v ?? '', holders: this.holders(digest) };
    });
  }

  repositoryHolds(repo: string, digest: Digest): Promise<RepositoryHold> {
    return this.ctx.read('repositoryHolds', () => ({
      manifestRefs: this.refCount(repo, digest),
      manifest: this.db.manifests.get(key(repo, digest)) !== undefined,
      link: this.db.blobs.get(key(repo, digest)) !== undefined,
    }));
  }

  quarantineBlob(digest: Digest, version: string, released: string[], now: number): Promise<boolean> {
    return this.ctx.write('quarantineBlob', () => {
      if (this.db.gcState.get(key(digest)) !== undefined) return false;
      if ((this.db.touches.get(key(digest))?.v ?? '') !== version) return false;
      if (this.pinnedUntil(digest, now) !== undefined) return false;
      for (const repo of released) this.db.blobRepos.remove(key(digest, repo));
      this.db.gcState.put(key(digest), { state: 'quarantined', since: now, qv: version });
      return true;
    });
  }

  beginPurge(digest: Digest, token: string, leaseUntil: number, quarantinedBefore: number, now: number): Promise<string[] | undefined> {
    return this.ctx.write('beginPurge', () => {
      const state = this.db.gcState.get(key(digest));
      if (state === undefined) return undefined;
      if (state.state === 'deleting') {
        if ((state.until ?? 0) >= now) return undefined;
        this.db.gcState.put(key(digest), { ...state, token, until: leaseUntil });
        return this.holders(digest);
      }
      const version = this.db.touches.get(key(digest))?.v ?? '';
      if (version !== state.qv || this.pinnedUntil(digest, now) !== undefined) {
        this.db.gcState.remove(key(digest));
        return undefined;
      }
      if (state.since > quarantinedBefore) return undefined;
      this.db.gcState.put(key(digest), { state: 'deleting', since: state.since, token, until: leaseUntil });
      return this.holders(digest);
    });
  }

  unlinkOrphan(repo: string, digest: Digest): Promise<boolean> {
    return this.ctx.write('unlinkOrphan', () => {
      if (this.refCount(repo, digest) > 0 || this.db.manifests.get(key(repo, digest)) !== undefined) return false;
      this.db.blobs.remove(key(repo, digest));
      return true;
    });
  }

  finishPurge(digest: Digest, token: string): Promise<boolean> {
    return this.ctx.write('finishPurge', () => {
      const state = this.db.gcState.get(key(digest));
      if (state?.state !== 'deleting' || state.token !== token) return false;
      this.db.gcState.remove(key(digest));
      this.db.touches.remove(key(digest));
      this.db.missing.remove(key(digest));
      for (const k of this.db.pins.getKeys(under(digest))) this.db.pins.remove(k);
      for (const k of this.db.blobRepos.getKeys(under(digest))) this.db.blobRepos.remove(k);
      return true;
    });
  }

  abortPurge(digest: Digest, token: string): Promise<void> {
    return this.ctx.write('abortPurge', () => {
      const state = this.db.gcState.get(key(digest));
      if (state?.state === 'deleting' && state.token === token) this.db.gcState.remove(key(digest));
    });
  }

  deleteManifestIfUnused(repo: string, digest: Digest, rule: UnusedManifestRule): Promise<ManifestRecord | undefined> {
    return this.ctx.write('deleteManifestIfUnused', () => {
      const record = this.db.manifests.get(key(repo, digest));
      if (record === undefined) return undefined;
      if (this.refCount(repo, digest) > 0) return undefined;
      const orphanReferrer = rule.orphanReferrers && record.subject !== undefined && this.db.manifests.get(key(repo, record.subject)) === undefined;
      let untaggedLongEnough = false;
      if (!orphanReferrer && rule.untaggedBefore !== undefined) {
        const tagged = hasAny(this.db.tagsOf.getKeys({ ...under(repo, digest), limit: 1 }));
        const since = Math.max(record.createdAt, this.db.untagged.get(key(repo, digest)) ?? 0);
        untaggedLongEnough = !tagged && since < rule.untaggedBefore;
      }
      if (!orphanReferrer && !untaggedLongEnough) return undefined;
      if (rule.dryRun) return record;
      this.ctx.removeManifest(repo, digest, record, rule.event);
      return record;
    });
  }

  enqueue(work: GcWork[]): Promise<void> {
    if (work.length === 0) return Promise.resolve();
    return this.ctx.write('gcEnqueue', () => {
      for (const w of work) {
        const item = itemOf(w);
        const old = this.db.gcQueue.get(key(item));
        if (old) this.db.gcDue.remove(dueKey(old.due, item));
        this.db.gcQueue.put(key(item), { due: w.due, token: randomUUID() });
        this.db.gcDue.put(dueKey(w.due, item), true);
      }
    });
  }

  takeDue(now: number, limit: number): Promise<QueuedGcWork[]> {
    return this.ctx.read('gcTakeDue', () => {
      const found: QueuedGcWork[] = [];
      if (limit <= 0) return found;
      for (const k of this.db.gcDue.getKeys({ end: dueKey(now + 1, '') })) {
        const item = k.subarray(6).toString('utf8');
        const entry = this.db.gcQueue.get(key(item));
        const work = entry && workOf(item, entry);
        if (work && work.due <= now) found.push(work);
        if (found.length >= limit) break;
      }
      return found;
    });
  }

  complete(work: QueuedGcWork[]): Promise<void> {
    if (work.length === 0) return Promise.resolve();
    return this.ctx.write('gcComplete', () => {
      for (const w of work) {
        const item = itemOf(w);
        const entry = this.db.gcQueue.get(key(item));
        if (entry?.token !== w.token) continue;
        this.db.gcQueue.remove(key(item));
        this.db.gcDue.remove(dueKey(entry.due, item));
      }
    });
  }

  queueSize(now: number): Promise<{ queued: number; due: number }> {
    return this.ctx.read('gcQueueSize', () => ({
      queued: this.db.gcQueue.getCount(),
      due: this.db.gcDue.getCount({ end: dueKey(now + 1, '') }),
    }));
  }

  completeness(): Promise<string | undefined> {
    return this.ctx.read('gcCompleteness', () => this.db.meta.get(key('complete')));
  }

  markComplete(reason: string): Promise<void> {
    return this.ctx.write('gcMarkComplete', () => {
      this.db.meta.put(key('complete'), reason);
    });
  }

  isEmpty(): Promise<boolean> {
    return this.ctx.read('isEmpty', () => !hasAny(this.db.repos.getKeys({ limit: 1 })) && !hasAny(this.db.uploads.getKeys({ limit: 1 })));
  }

  /** The latest `until` of the digest's pins that still count at `now`, if any. */
  private pinnedUntil(digest: Digest, now: number): number | undefined {
    let latest: number | undefined;
    const prefix = under(digest);
    for (const { value } of this.db.pins.getRange(prefix)) {
      if (value > now && (latest === undefined || value > latest)) latest = value;
    }
    return latest;
  }

  private refCount(repo: string, digest: Digest): number {
    return this.db.refs.getCount(under(repo, digest));
  }

  private holders(digest: Digest): string[] {
    const prefix = under(digest);
    return Array.from(this.db.blobRepos.getKeys(prefix), (k) => lastPart(k, prefix.start.length));
  }
}
