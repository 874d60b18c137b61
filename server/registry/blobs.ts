import type { Readable } from 'node:stream';
import { BlobNotFoundError, InvalidOffsetError, type BlobDriver, type BlobSender, type SendCheck } from '../../storage-drivers/blob/types.js';
import type { BlobLink, MetadataStore } from '../../storage-drivers/metadata/types.js';
import { OciError } from '../errors.js';
import { CorruptObjectError, guardStream, matchesDigest, type Integrity } from './integrity.js';
import { blobKey } from './keys.js';
import type { ParsedDigest } from './references.js';
import type { GcUsage } from './gc/usage.js';
import type { Quotas } from './quotas/service.js';
import type { EventOrigin } from '../../storage-drivers/metadata/event-types.js';
import type { SharedReads } from './shared-reads.js';

/** How GETs read storage: shared reads of large blobs, and a count of the reads opened. */
export interface BlobReadOptions {
  /** Full GETs of blobs of at least `sharedMinBytes` share one storage read per process. */
  shared?: SharedReads;
  sharedMinBytes?: number;
  /** A read of blob bytes was opened on the driver (metrics). */
  onStorageRead?: () => void;
}

/** Blobs up to this size are read whole and sent as one buffer. */
const SMALL_BLOB_BYTES = 64 * 1024;

/** Inclusive byte offsets. */
export interface ByteRange {
  start: number;
  end: number;
}

/** The part of the blob a GET sends: all of it (200) or a range (206); `length` bytes of `size`. */
interface BlobPart {
  status: 200 | 206;
  length: number;
  size: number;
  range: ByteRange | undefined;
}

/**
 * What a blob GET answers with, decided here and sent by server/routes/send.ts: a redirect to
 * storage, the bytes of a small blob, the driver's own sending path, or a stream. A sender must be
 * closed; a stream is opened by the sender of the response, with a signal that aborts the read when
 * the client leaves.
 */
export type BlobContent =
  | { kind: 'redirect'; location: string }
  | { kind: 'buffer'; status: 200; length: number; bytes: Buffer }
  | ({ kind: 'sender'; sender: BlobSender } & BlobPart)
  | ({ kind: 'stream'; open(signal: AbortSignal): Promise<Readable> } & BlobPart);

/** Blob reads, deletes and mounts; one stored copy per digest, visibility per repository. */
export class BlobService {
  constructor(
    private readonly driver: BlobDriver,
    private readonly metadata: MetadataStore,
    private readonly integrity: Integrity,
    private readonly usage: GcUsage,
    private readonly quotas?: Quotas,
    private readonly reads: BlobReadOptions = {},
  ) {}

  /**
   * The blob's link in `repo` (its size), or BLOB_UNKNOWN. Answered from metadata alone unless the
   * digest is marked missing: then storage is asked once, and the mark dropped if the bytes are back.
   */
  async stat(repo: string, digest: ParsedDigest): Promise<BlobLink> {
    const link = await this.metadata.getCheckedBlobLink(repo, digest.value);
    if (!link) throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is not in repository ${repo}`);
    if (link.deleting) throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is being deleted by garbage collection; push it again`);
    if (link.missing && !(await this.backInStorage(digest, link.size))) throw gone(digest);
    // A use: a push that HEADs a blob and then references it keeps GC off it for the delay.
    await this.usage.touch(digest.value);
    return { digest: link.digest, size: link.size };
  }

  /**
   * What to send for a GET of the blob (`size` bytes, as `stat` found) or of `range` of it. With
   * `redirect`, a driver that can hand out a URL to the bytes sends the client there.
   */
  async content(digest: ParsedDigest, size: number, range: ByteRange | undefined, options: { redirect: boolean }): Promise<BlobContent> {
    if (options.redirect) {
      const location = await this.redirectUrl(digest);
      if (location) return { kind: 'redirect', location };
    }
    // Configs and small layers: one read into a buffer costs a fraction of setting up a stream.
    if (!range && size <= SMALL_BLOB_BYTES) return { kind: 'buffer', status: 200, length: size, bytes: await this.read(digest, size) };
    const part: BlobPart = range ? { status: 206, length: range.end - range.start + 1, size, range } : { status: 200, length: size, size, range: undefined };
    const { shared } = this.reads;
    // Ranged GETs are not shared: a client resuming a pull asks for its own tail, rarely a hot one.
    if (shared && !range && size >= (this.reads.sharedMinBytes ?? 0)) {
      return { kind: 'stream', open: (signal) => this.openShared(shared, digest, size, signal), ...part };
    }
    const sender = await this.openSender(digest, size, range);
    if (sender) return { kind: 'sender', sender, ...part };
    return { kind: 'stream', open: (signal) => this.open(digest, size, range, signal), ...part };
  }

  /** The blob from the one read in flight for it in this process (or alone, when the spool has no room). */
  private async openShared(shared: SharedReads, digest: ParsedDigest, size: number, signal: AbortSignal): Promise<Readable> {
    const stream = await shared.open(digest.value, size, (sourceSignal) => this.open(digest, size, undefined, sourceSignal), signal);
    return stream ?? this.open(digest, size, undefined, signal);
  }

  /** A stream of the blob (or a range of it) that errors, never ends cleanly, when storage disagrees with `size` or the digest. */
  async open(digest: ParsedDigest, size: number, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const stream = await this.opening(digest, () => this.driver.reader(blobKey(digest), range ? { start: range.start, end: range.end, signal } : { signal }));
    this.reads.onStorageRead?.();
    const check = this.checkFor(digest, size, range);
    const length = range ? range.end - range.start + 1 : size;
    return guardStream(stream, length, digest.value, check, async (err) => {
      await this.integrity.quarantine(digest, err.reason, 'blob', 'read');
      // Sent as a 404 if no byte has gone out yet (a one-chunk stream); otherwise the connection is cut.
      return corrupt(digest);
    });
  }

  /** The driver's fast sending path for this blob, if it has one, verifying as the policy asks. */
  async openSender(digest: ParsedDigest, size: number, range?: ByteRange): Promise<BlobSender | undefined> {
    const openSender = this.driver.openSender?.bind(this.driver);
    if (!openSender) return undefined;
    const sender = await this.opening(digest, () => openSender(blobKey(digest), range ? { start: range.start, end: range.end } : {}));
    this.reads.onStorageRead?.();
    if (sender.size !== undefined && sender.size !== size) {
      // A truncated (or grown) file: found before any byte is sent, so the client gets a clean 404.
      await sender.close();
      await this.integrity.quarantine(digest, 'size_mismatch', 'blob', 'read');
      throw corrupt(digest);
    }
    const check = this.checkFor(digest, size, range);
    return {
      ...(sender.size === undefined ? {} : { size: sender.size }),
      sendTo: async (dest, signal) => {
        try {
          await sender.sendTo(dest, signal, check);
        } catch (err) {
          if (err instanceof CorruptObjectError) await this.integrity.quarantine(digest, err.reason, 'blob', 'read');
          // The file shrank while being sent (size checked at open): as truncated as it gets.
          else if (err instanceof InvalidOffsetError) {
            await this.integrity.quarantine(digest, 'size_mismatch', 'blob', 'read');
            throw new CorruptObjectError('size_mismatch', digest.value, `${digest.value}: storage ended early while sending`);
          }
          throw err;
        }
      },
      close: () => sender.close(),
    };
  }

  /** A small blob's bytes in one read, checked against `size` and (as the policy says) the digest. */
  async read(digest: ParsedDigest, size: number): Promise<Buffer> {
    const data = await this.opening(digest, () => this.driver.get(blobKey(digest)));
    this.reads.onStorageRead?.();
    const reason =
      data.length !== size ? 'size_mismatch' : this.integrity.mustVerify(digest.value, size) && !matchesDigest(data, digest) ? 'digest_mismatch' : undefined;
    if (reason) {
      await this.integrity.quarantine(digest, reason, 'blob', 'read');
      throw corrupt(digest);
    }
    return data;
  }

  /** Full reads get a digest check; a ranged read of an unverified blob starts one in the background. */
  private checkFor(digest: ParsedDigest, size: number, range: ByteRange | undefined): SendCheck | undefined {
    if (range) {
      if (this.integrity.wantsBackgroundVerify(digest.value, size)) this.integrity.verifyInBackground(digest, size);
      return undefined;
    }
    return this.integrity.mustVerify(digest.value, size) ? this.integrity.check(digest, size) : undefined;
  }

  /** Opens the blob; a missing object or one shorter than the recorded range is recorded and answered as unknown. */
  private async opening<T>(digest: ParsedDigest, open: () => Promise<T>): Promise<T> {
    try {
      return await open();
    } catch (err) {
      if (err instanceof BlobNotFoundError) {
        await this.integrity.missing(digest, 'blob', 'read');
        throw gone(digest);
      }
      if (err instanceof InvalidOffsetError) {
        // The range was checked against the recorded size, so storage holds fewer bytes than it should.
        await this.integrity.quarantine(digest, 'size_mismatch', 'blob', 'read');
        throw corrupt(digest);
      }
      throw err;
    }
  }

  /** For a digest marked missing: true (and the mark dropped) once storage holds the recorded size again. */
  private async backInStorage(digest: ParsedDigest, size: number): Promise<boolean> {
    let stored: number;
    try {
      stored = (await this.driver.stat(blobKey(digest))).size;
    } catch (err) {
      if (err instanceof BlobNotFoundError) return false;
      throw err;
    }
    if (stored !== size) {
      await this.integrity.quarantine(digest, 'size_mismatch', 'blob', 'read');
      return false;
    }
    await this.metadata.clearBlobMissing(digest.value);
    return true;
  }

  async redirectUrl(digest: ParsedDigest): Promise<string | undefined> {
    return this.driver.redirectUrl?.(blobKey(digest));
  }

  /** Removes the blob from `repo`; the stored bytes stay for other repositories. */
  async unlink(repo: string, digest: ParsedDigest, origin?: EventOrigin): Promise<void> {
    if (!(await this.metadata.unlinkBlob(repo, digest.value, { event: origin })))
      throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is not in repository ${repo}`);
    await this.usage.queueBlobs([digest.value]);
  }

  /**
   * Links a blob from `from` (or, without `from`, from any repository `mayRead` accepts) into `repo`.
   * Returns the link, or undefined when no permitted source holds it.
   */
  async mount(
    repo: string,
    digest: ParsedDigest,
    from: string | undefined,
    mayRead: (source: string) => Promise<boolean>,
    origin?: EventOrigin,
  ): Promise<BlobLink | undefined> {
    // Pinned first, so GC cannot delete the bytes between the check below and the link.
    const pinned = await this.usage.pin([digest.value]);
    if (!('pin' in pinned)) return undefined;
    let link: BlobLink | undefined;
    try {
      link = await this.mountPinned(repo, digest, from, mayRead, origin);
    } finally {
      await pinned.pin.release();
    }
    // A new link nothing references yet: GC looks again once the delay is over. A refused mount made none.
    if (link) await this.usage.queueBlobs([digest.value]);
    return link;
  }

  private async mountPinned(
    repo: string,
    digest: ParsedDigest,
    from: string | undefined,
    mayRead: (source: string) => Promise<boolean>,
    origin: EventOrigin | undefined,
  ): Promise<BlobLink | undefined> {
    const sources = from !== undefined ? [from] : await this.metadata.blobRepositories(digest.value, 50);
    for (const source of sources) {
      if (source === repo) continue;
      const link = await this.metadata.getBlobLink(source, digest.value);
      if (!link || !(await mayRead(source))) continue;
      // The bytes must really be there: a mount never makes a repository point at nothing.
      try {
        await this.driver.stat(blobKey(digest));
      } catch (err) {
        if (err instanceof BlobNotFoundError) continue;
        throw err;
      }
      // Counted in the namespace first: a mount into a full namespace is refused (nothing linked).
      await this.quotas?.charge(repo, 'blob', link.digest, link.size, 'mount');
      try {
        await this.metadata.linkBlob(repo, link, { via: 'mount', fromRepository: source, event: origin });
      } catch (err) {
        await this.quotas?.undoCharge(repo, 'blob', link.digest).catch(() => undefined);
        throw err;
      }
      return link;
    }
    // A link whose bytes storage no longer holds must not answer the mount: the client would skip the push.
    try {
      return await this.stat(repo, digest);
    } catch (err) {
      if (err instanceof OciError && err.code === 'BLOB_UNKNOWN') return undefined;
      throw err;
    }
  }
}

function gone(digest: ParsedDigest): OciError {
  return new OciError('BLOB_UNKNOWN', `blob ${digest.value} is linked but storage does not hold its bytes (missing or quarantined as corrupt); push it again`);
}

function corrupt(digest: ParsedDigest): OciError {
  return new OciError('BLOB_UNKNOWN', `blob ${digest.value} was found corrupt in storage and has been quarantined; push it again`);
}
