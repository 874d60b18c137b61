// The request paths' side of garbage collection: every use of a digest is recorded (touch), every
// push pins what it is about to reference, and every lost reference queues work for the collector.
import { randomUUID } from 'node:crypto';
import { StorageFullError } from '../../../storage-drivers/blob/types.js';
import type { GcWork } from '../../../storage-drivers/metadata/gc-types.js';
import type { Digest, ManifestRecord, MetadataStore } from '../../../storage-drivers/metadata/types.js';

export interface GcUsageOptions {
  /** A digest unused for this long may be collected (gc.delaySeconds). */
  delayMs: number;
  /** How long a pin counts when its request never ends (a crash). */
  pinMs: number;
  /** Untagged manifests are queued for collection (gc.deleteUntagged), this long after they lost their last tag. */
  untaggedAgeMs: number | undefined;
  /** How long a push waits for GC to finish deleting a digest it is about to store again. */
  deletingWaitMs: number;
  now: () => number;
}

/** A pin held by one request: released once its holds are committed (or it failed). */
export interface HeldPin {
  release(): Promise<void>;
}

/** Touches of one digest closer together than this are written once (a hot layer pulled by many nodes). */
const TOUCH_COALESCE_MAX_MS = 1000;

export class GcUsage {
  private readonly lastTouch = new Map<Digest, number>();
  /** Touches this long apart are coalesced; at most half the delay, so a written touch still protects. */
  readonly coalesceMs: number;

  constructor(
    private readonly metadata: MetadataStore,
    readonly options: GcUsageOptions,
  ) {
    this.coalesceMs = Math.min(TOUCH_COALESCE_MAX_MS, Math.floor(options.delayMs / 2));
  }

  /** A HEAD, GET or mount of the digest. */
  async touch(digest: Digest): Promise<void> {
    const now = this.options.now();
    const last = this.lastTouch.get(digest);
    if (last !== undefined && now - last < this.coalesceMs) return;
    this.lastTouch.set(digest, now);
    if (this.lastTouch.size > 100_000) this.lastTouch.clear();
    try {
      await this.metadata.gc.touchBlobs([digest], now);
    } catch (err) {
      // Reads keep working on a full metadata volume; an unrecorded use only weakens the delay, and
      // a push still pins what it references.
      if (!(err instanceof StorageFullError)) throw err;
    }
  }

  /**
   * Pins the digests before a push stores bytes or creates holds; returns the pin, or the digests GC
   * is deleting (none of them pinned then).
   */
  async pin(wanted: Digest[]): Promise<{ pin: HeldPin } | { deleting: Digest[] }> {
    const digests = [...new Set(wanted)];
    const id = randomUUID();
    const now = this.options.now();
    const refused = await this.metadata.gc.pinBlobs(digests, { id, now, until: now + this.options.pinMs });
    const pinned = digests.filter((d) => !refused.includes(d));
    const release = async () => {
      const lost = await this.metadata.gc.unpinBlobs(pinned, id);
      // The pin outlived its expiry (a stalled process) and GC may have acted in between: re-pin
      // to find out; a digest being deleted under a hold just made is marked missing, so HEAD stops
      // claiming it and clients push it again.
      if (lost.length > 0) await this.recheckLost(lost);
    };
    if (refused.length > 0) {
      await release();
      return { deleting: refused };
    }
    return { pin: { release } };
  }

  /**
   * Pins the digests, waiting (up to deletingWaitMs) while GC finishes deleting any of them: for a
   * push that will store the bytes itself (an upload's finish, a manifest's own bytes).
   */
  async pinWaiting(digests: Digest[]): Promise<{ pin: HeldPin } | { deleting: Digest[] }> {
    const deadline = this.options.now() + this.options.deletingWaitMs;
    let wait = 10;
    for (;;) {
      const result = await this.pin(digests);
      if ('pin' in result || this.options.now() >= deadline) return result;
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 200);
    }
  }

  /** Queues a digest whose last reference may have gone (or that nothing references yet). */
  async queueBlobs(digests: Digest[], delayMs = this.options.delayMs): Promise<void> {
    const due = this.options.now() + delayMs;
    await this.metadata.gc.enqueue([...new Set(digests)].map((digest): GcWork => ({ kind: 'blob', digest, due })));
  }

  /** Queues manifests that lost their last tag, when untagged manifests are collected. */
  async queueUntagged(repo: string, digests: Digest[]): Promise<void> {
    if (this.options.untaggedAgeMs === undefined || digests.length === 0) return;
    const due = this.options.now() + this.options.untaggedAgeMs;
    await this.metadata.gc.enqueue(digests.map((digest): GcWork => ({ kind: 'manifest', repo, digest, due })));
  }

  /** Queues referrers whose subject was deleted (they go with it) and the deleted manifest's content. */
  async queueAfterManifestDelete(repo: string, record: ManifestRecord, referrers: Digest[]): Promise<void> {
    const now = this.options.now();
    const work: GcWork[] = [...new Set([record.digest, ...record.references])].map((digest) => ({ kind: 'blob', digest, due: now + this.options.delayMs }));
    for (const digest of referrers) work.push({ kind: 'manifest', repo, digest, due: now });
    if (this.options.untaggedAgeMs !== undefined) {
      for (const child of record.references) work.push({ kind: 'manifest', repo, digest: child, due: now });
    }
    await this.metadata.gc.enqueue(work);
  }

  private async recheckLost(lost: Digest[]): Promise<void> {
    const id = randomUUID();
    const now = this.options.now();
    const deleting = await this.metadata.gc.pinBlobs(lost, { id, now, until: now + this.options.pinMs });
    await this.metadata.gc.unpinBlobs(
      lost.filter((d) => !deleting.includes(d)),
      id,
    );
    for (const digest of deleting) await this.metadata.markBlobMissing(digest);
  }
}
