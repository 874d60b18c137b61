// One garbage-collection pass: the queued work that is due, judged digest by digest. Every decision
// is a compare-and-set in the metadata store, so any number of processes may run passes at once;
// what a killed pass left half-done is in the queue or in a 'deleting' state a later pass takes over.
import { randomUUID } from 'node:crypto';
import { BlobNotFoundError, type BlobDriver } from '../../../storage-drivers/blob/types.js';
import type { QueuedGcWork, UnusedManifestRule } from '../../../storage-drivers/metadata/gc-types.js';
import type { Digest, MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { blobKey } from '../keys.js';
import { parseDigest } from '../references.js';
import { newRecordId, type EventOrigin } from '../../../storage-drivers/metadata/event-types.js';

/** Garbage collection's changes in the event outbox. */
const GC_ORIGIN: EventOrigin = { actor: 'gc', actorKind: 'system' };

export interface CollectorOptions {
  delayMs: number;
  quarantineMs: number;
  /** Untagged manifests are collected this long after they lost their last tag; undefined: never. */
  untaggedAgeMs: number | undefined;
  leaseMs: number;
  now: () => number;
  /** Ends uploads abandoned beyond their idle timeout (part of every pass that is not a dry run). */
  sweepUploads?: () => Promise<number>;
}

export interface PassOptions {
  /** At most this many queued items (default 1000). */
  limit?: number;
  /** Judge but change nothing: what would be quarantined, deleted for good, and the manifests that would go. */
  dryRun?: boolean;
  signal?: AbortSignal;
  /** Called every `progressEveryMs` (default 2000) and at the end. */
  onProgress?: (summary: GcSummary) => void;
  progressEveryMs?: number;
  /** Something noteworthy happened (a manifest or blob deleted, a pin lost): for audit lines and logs. */
  onAction?: (action: GcAction) => void;
}

export type GcAction =
  | { action: 'gc_manifest_deleted'; repository: string; digest: Digest; reason: 'untagged' | 'orphan_referrer' }
  | { action: 'gc_blob_quarantined'; digest: Digest }
  | { action: 'gc_blob_deleted'; digest: Digest; bytes: number }
  | { action: 'gc_error'; digest: Digest; message: string };

export interface GcSummary {
  dryRun: boolean;
  /** Queue items looked at. */
  examined: number;
  manifestsDeleted: number;
  blobsQuarantined: number;
  blobsDeleted: number;
  bytesFreed: number;
  /** Repository links removed with their blob. */
  linksRemoved: number;
  /** Uploads abandoned beyond their idle timeout, ended with their bytes. */
  uploadsExpired: number;
  /** Items still referenced (dropped from the queue) and items not due yet (put back for later). */
  kept: number;
  deferred: number;
  errors: number;
  /** Due items left for the next pass (the limit was reached, or the pass was stopped). */
  remaining: number;
  durationMs: number;
}

export function emptySummary(dryRun: boolean): GcSummary {
  return {
    dryRun,
    examined: 0,
    manifestsDeleted: 0,
    blobsQuarantined: 0,
    blobsDeleted: 0,
    bytesFreed: 0,
    linksRemoved: 0,
    uploadsExpired: 0,
    kept: 0,
    deferred: 0,
    errors: 0,
    remaining: 0,
    durationMs: 0,
  };
}

/** GC refuses to run: the metadata store may not know everything storage holds. */
export class GcRefusedError extends Error {
  constructor() {
    super(
      'garbage collection refused: the metadata store is not known to be complete (it was emptied, lost or never rebuilt after an upgrade), ' +
        'so every blob would look unreferenced. Run `berth metadata rebuild` first; it marks the store complete when it finishes.',
    );
    this.name = 'GcRefusedError';
  }
}

interface PurgeReady {
  digest: Digest;
  token: string;
  /** Undefined: storage held no bytes (only records and dangling links to clean up). */
  bytes: number | undefined;
  work: QueuedGcWork;
}

export class Collector {
  constructor(
    private readonly driver: BlobDriver,
    private readonly metadata: MetadataStore,
    private readonly options: CollectorOptions,
  ) {}

  async pass(options: PassOptions = {}): Promise<GcSummary> {
    if ((await this.metadata.gc.completeness()) === undefined) throw new GcRefusedError();
    const started = performance.now();
    const limit = options.limit ?? 1000;
    const summary = emptySummary(options.dryRun ?? false);
    if (!summary.dryRun && this.options.sweepUploads) summary.uploadsExpired = await this.options.sweepUploads();
    const every = options.progressEveryMs ?? 2000;
    let lastReport = performance.now();
    // Work deferred in this pass is due after its start, so a pass never takes the same item twice;
    // a dry run changes nothing and reads the window once.
    const passStart = this.options.now();
    while (summary.examined < limit && !options.signal?.aborted) {
      const batch = await this.metadata.gc.takeDue(passStart, summary.dryRun ? limit : Math.min(100, limit - summary.examined));
      if (batch.length === 0) break;
      const purges: PurgeReady[] = [];
      for (const work of batch) {
        if (options.signal?.aborted) break;
        summary.examined++;
        try {
          if (work.kind === 'manifest') await this.manifestWork(work, summary, options);
          else {
            const ready = await this.blobWork(work, summary, options);
            if (ready) purges.push(ready);
          }
        } catch (err) {
          summary.errors++;
          options.onAction?.({ action: 'gc_error', digest: work.digest, message: err instanceof Error ? err.message : String(err) });
        }
      }
      await this.deleteStored(purges, summary, options);
      if (performance.now() - lastReport >= every) {
        lastReport = performance.now();
        options.onProgress?.({ ...summary, durationMs: Math.round(performance.now() - started) });
      }
      if (summary.dryRun) break;
    }
    summary.remaining = (await this.metadata.gc.queueSize(this.options.now())).due;
    summary.durationMs = Math.round(performance.now() - started);
    options.onProgress?.({ ...summary });
    return summary;
  }

  private rule(): UnusedManifestRule {
    return {
      orphanReferrers: true,
      event: { ...GC_ORIGIN, reason: 'unused' },
      ...(this.options.untaggedAgeMs === undefined ? {} : { untaggedBefore: this.options.now() - this.options.untaggedAgeMs }),
    };
  }

  private async manifestWork(work: QueuedGcWork & { kind: 'manifest' }, summary: GcSummary, options: PassOptions): Promise<void> {
    const { repo, digest } = work;
    const rule = this.rule();
    if (options.dryRun) {
      if (await this.metadata.gc.deleteManifestIfUnused(repo, digest, { ...rule, dryRun: true })) summary.manifestsDeleted++;
      else summary.kept++;
      return;
    }
    const record = await this.metadata.gc.deleteManifestIfUnused(repo, digest, rule);
    if (record === undefined) {
      summary.kept++;
      await this.metadata.gc.complete([work]);
      return;
    }
    summary.manifestsDeleted++;
    const orphan = record.subject !== undefined && !(await this.metadata.getManifest(repo, record.subject));
    options.onAction?.({ action: 'gc_manifest_deleted', repository: repo, digest, reason: orphan ? 'orphan_referrer' : 'untagged' });
    const referrers = (await this.metadata.listReferrers(repo, digest)).map((r) => r.digest);
    const now = this.options.now();
    await this.metadata.gc.enqueue([
      ...[...new Set([digest, ...record.references])].map((d) => ({ kind: 'blob' as const, digest: d, due: now + this.options.delayMs })),
      ...referrers.map((d) => ({ kind: 'manifest' as const, repo, digest: d, due: now })),
      ...(this.options.untaggedAgeMs === undefined ? [] : record.references.map((d) => ({ kind: 'manifest' as const, repo, digest: d, due: now }))),
    ]);
    await this.metadata.gc.complete([work]);
  }

  /** Judges one digest; returns it when it is ready to be deleted from storage (in a batch). */
  private async blobWork(work: QueuedGcWork & { kind: 'blob' }, summary: GcSummary, options: PassOptions): Promise<PurgeReady | undefined> {
    const { digest } = work;
    const now = this.options.now();
    const claim = await this.metadata.gc.claimBlob(digest, now - this.options.delayMs, now);
    if (!claim.ok) {
      if (claim.reason === 'quarantined' || (claim.reason === 'deleting' && claim.until < now)) {
        const purgeAt = claim.reason === 'quarantined' ? claim.since + this.options.quarantineMs : now;
        if (purgeAt > now) return this.defer(work, purgeAt, summary, options);
        return this.beginPurge(work, summary, options);
      }
      return this.defer(work, claim.reason === 'deleting' ? claim.until + 1 : claim.retryAt, summary, options);
    }
    const released: string[] = [];
    const linkedOnly: string[] = [];
    let held = false;
    for (const repo of claim.holders) {
      const hold = await this.metadata.gc.repositoryHolds(repo, digest);
      if (hold.manifestRefs > 0 || hold.manifest) held = true;
      else if (hold.link) linkedOnly.push(repo);
      else released.push(repo);
    }
    if (held) {
      // Referenced somewhere: the bytes stay, but a repository whose manifests no longer reference
      // the blob loses its link (a push racing this answers BLOB_UNKNOWN and uploads it again).
      summary.kept++;
      if (options.dryRun) return undefined;
      for (const repo of linkedOnly) if (await this.metadata.gc.unlinkOrphan(repo, digest)) summary.linksRemoved++;
      await this.metadata.gc.complete([work]);
      return undefined;
    }
    if (linkedOnly.length === 0 && (await this.storedSize(digest)) === undefined) {
      // Nothing holds it and storage has no bytes (deleted by another pass, or never stored): done.
      summary.kept++;
      if (!options.dryRun) await this.metadata.gc.complete([work]);
      return undefined;
    }
    if (options.dryRun) {
      summary.blobsQuarantined++;
      // Without a quarantine a real pass deletes it at once.
      if (this.options.quarantineMs === 0) return this.beginPurge(work, summary, options);
      return undefined;
    }
    if (!(await this.metadata.gc.quarantineBlob(digest, claim.version, released, now))) {
      // Used or pinned since the claim: look again after the delay.
      return this.defer(work, now + this.options.delayMs, summary, options);
    }
    summary.blobsQuarantined++;
    options.onAction?.({ action: 'gc_blob_quarantined', digest });
    if (this.options.quarantineMs > 0) {
      await this.metadata.gc.enqueue([{ kind: 'blob', digest, due: now + this.options.quarantineMs }]);
      return undefined;
    }
    // No quarantine: straight on to the deletion. The item stays queued until it is done, so a pass
    // killed in between leaves it for the next one.
    return this.beginPurge(work, summary, options);
  }

  private async beginPurge(work: QueuedGcWork, summary: GcSummary, options: PassOptions): Promise<PurgeReady | undefined> {
    const { digest } = work;
    const now = this.options.now();
    if (options.dryRun) {
      const size = await this.storedSize(digest);
      if (size !== undefined) {
        summary.blobsDeleted++;
        summary.bytesFreed += size;
      }
      return undefined;
    }
    const token = randomUUID();
    const holders = await this.metadata.gc.beginPurge(digest, token, now + this.options.leaseMs, now - this.options.quarantineMs, now);
    if (holders === undefined) {
      // Used during the quarantine (revived), or taken by another process: judge it afresh later.
      return this.defer(work, now + this.options.delayMs, summary, options);
    }
    for (const repo of holders) {
      if (!(await this.metadata.gc.unlinkOrphan(repo, digest))) {
        // Only a push that outlived its pin can get here: the digest is referenced after all.
        await this.metadata.gc.abortPurge(digest, token);
        options.onAction?.({ action: 'gc_error', digest, message: `deletion given up: ${repo} references it` });
        return this.defer(work, now + this.options.delayMs, summary, options);
      }
      summary.linksRemoved++;
    }
    return { digest, token, bytes: await this.storedSize(digest), work };
  }

  /** Deletes the bytes of every digest in `ready` (one batched request where the driver has one), then ends their deletions. */
  private async deleteStored(ready: PurgeReady[], summary: GcSummary, options: PassOptions): Promise<void> {
    if (ready.length === 0) return;
    const keys = ready.map((r) => blobKey(parseDigest(r.digest)));
    const { failed } = await this.driver.deleteMany(keys);
    const failedKeys = new Map(failed.map((f) => [f.key, f.error]));
    for (const [i, r] of ready.entries()) {
      const error = failedKeys.get(keys[i] as string);
      if (error) {
        // Left in 'deleting': its lease runs out and a later pass takes it over.
        summary.errors++;
        options.onAction?.({ action: 'gc_error', digest: r.digest, message: `storage delete failed: ${error.message}` });
        continue;
      }
      // Logged before the deletion is marked done: a crash in between leaves it 'deleting', and the
      // process that finishes it logs it again (a duplicate, never a loss).
      await this.metadata.events.append([
        { id: newRecordId(), at: Date.now(), origin: GC_ORIGIN, kind: 'blob_deleted', digest: r.digest, ...(r.bytes === undefined ? {} : { size: r.bytes }) },
      ]);
      if (!(await this.metadata.gc.finishPurge(r.digest, r.token))) {
        // Another process took the deletion over after this one's lease ran out; if the digest was
        // pushed again in between, its bytes may just have gone: make HEAD check storage.
        await this.metadata.markBlobMissing(r.digest);
        summary.errors++;
        options.onAction?.({ action: 'gc_error', digest: r.digest, message: 'deletion lease lost before it finished; digest marked for a storage check' });
        continue;
      }
      if (r.bytes !== undefined) {
        summary.blobsDeleted++;
        summary.bytesFreed += r.bytes;
        options.onAction?.({ action: 'gc_blob_deleted', digest: r.digest, bytes: r.bytes });
      }
      await this.metadata.gc.complete([r.work]);
    }
  }

  private async defer(work: QueuedGcWork, due: number, summary: GcSummary, options: PassOptions): Promise<undefined> {
    summary.deferred++;
    if (!options.dryRun) {
      const { token: _token, ...item } = work;
      await this.metadata.gc.enqueue([{ ...item, due: Math.max(due, this.options.now() + 1) }]);
    }
    return undefined;
  }

  private async storedSize(digest: Digest): Promise<number | undefined> {
    try {
      return (await this.driver.stat(blobKey(parseDigest(digest)))).size;
    } catch (err) {
      if (err instanceof BlobNotFoundError) return undefined;
      throw err;
    }
  }
}
