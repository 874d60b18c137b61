// Never serve bytes that do not match their digest: read verification, quarantine and "missing" marks.
// The policy and its reasons are in docs/integrity.md.
import { createHash, type Hash } from 'node:crypto';
import { pipeline, Transform, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlobNotFoundError, type BlobDriver, type SendCheck } from '../../storage-drivers/blob/types.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import { blobKey, quarantineKey } from './keys.js';
import type { ParsedDigest } from './references.js';
import { newRecordId, type EventOrigin } from '../../storage-drivers/metadata/event-types.js';

const INTEGRITY_ORIGIN: EventOrigin = { actor: 'scrub', actorKind: 'system', reason: 'integrity check' };

/**
 * always: hash every full read. first: hash small objects always and a large blob until one read of it
 * has been verified in this process. small: hash small objects only (large ones are left to scrub).
 */
export type VerifyReads = 'always' | 'first' | 'small';
export type IntegrityReason = 'digest_mismatch' | 'size_mismatch' | 'missing';
export type ObjectKind = 'blob' | 'manifest';
export type FoundBy = 'read' | 'scrub';

/** One object found bad: for the metric and the log line. */
export interface IntegrityEvent {
  reason: IntegrityReason;
  kind: ObjectKind;
  foundBy: FoundBy;
  digest: string;
  /** Where the object was (its content address). */
  key: string;
  /** Where it was moved to, when it was quarantined. */
  quarantineKey?: string;
}

export interface IntegrityLogger {
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface IntegrityOptions {
  verifyReads: VerifyReads;
  /** Objects up to this size are hashed on every read whatever the policy. */
  smallBytes: number;
  /** How many verified large digests this process remembers (policy `first`). */
  rememberVerified: number;
  onEvent?: (event: IntegrityEvent) => void;
  log?: IntegrityLogger;
}

/** The bytes being sent do not match their digest or recorded size. */
export class CorruptObjectError extends Error {
  constructor(
    readonly reason: Exclude<IntegrityReason, 'missing'>,
    readonly digest: string,
    message: string,
  ) {
    super(message);
    this.name = 'CorruptObjectError';
  }
}

/** Hashes what passes and checks length and digest before the last chunk goes out. */
export class DigestCheck implements SendCheck {
  private readonly hash: Hash;
  private seen = 0;

  constructor(
    private readonly digest: ParsedDigest,
    private readonly size: number,
    private readonly onVerified?: () => void,
  ) {
    this.hash = createHash(digest.algorithm);
  }

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.seen += chunk.length;
  }

  beforeLast(): void {
    if (this.seen !== this.size) {
      throw new CorruptObjectError(
        'size_mismatch',
        this.digest.value,
        `${this.digest.value}: storage holds ${this.seen} bytes, the registry recorded ${this.size}`,
      );
    }
    if (this.hash.digest('hex') !== this.digest.hex) {
      throw new CorruptObjectError('digest_mismatch', this.digest.value, `${this.digest.value}: the stored bytes do not hash to their digest`);
    }
    this.onVerified?.();
  }
}

/**
 * Passes `source` through, checking it yields exactly `length` bytes (and, with `check`, their digest).
 * The last chunk is held back until the check passed: a bad object never ends cleanly. `onBad` runs
 * (quarantine) before the stream errors, so by the time a client sees the cut the object is gone; the
 * stream errors with what it returns (an error response, when nothing was sent yet).
 */
export function guardStream(
  source: Readable,
  length: number,
  digest: string,
  check: SendCheck | undefined,
  onBad: (err: CorruptObjectError) => Promise<Error>,
): Readable {
  let held: Buffer | undefined;
  let count = 0;
  const fail = (err: CorruptObjectError, callback: (err: Error) => void) => {
    onBad(err).then(
      (answer) => callback(answer),
      () => callback(err),
    );
  };
  const guard = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      count += chunk.length;
      if (count > length) {
        fail(new CorruptObjectError('size_mismatch', digest, `${digest}: storage holds more bytes than the registry recorded`), callback);
        return;
      }
      if (held) {
        check?.update(held);
        this.push(held);
      }
      held = chunk;
      callback();
    },
    flush(callback) {
      if (count !== length) {
        fail(new CorruptObjectError('size_mismatch', digest, `${digest}: storage ended after ${count} of ${length} bytes`), callback);
        return;
      }
      try {
        if (held) check?.update(held);
        check?.beforeLast();
      } catch (err) {
        fail(
          err instanceof CorruptObjectError ? err : new CorruptObjectError('digest_mismatch', digest, `${digest}: verification failed: ${String(err)}`),
          callback,
        );
        return;
      }
      if (held) this.push(held);
      callback();
    },
  });
  // Errors travel both ways: a failing source errors the guard, a client that leaves stops the source.
  pipeline(source, guard, () => undefined);
  return guard;
}

export interface VerifyStoredOptions {
  /** Reads at most this many bytes per second (scrub); unlimited when absent. */
  bytesPerSecond?: number;
  signal?: AbortSignal;
}

export type VerifyResult = { ok: true; bytes: number } | { ok: false; reason: IntegrityReason; bytes: number };

export class Integrity {
  private readonly verified = new Map<string, true>();
  private readonly background = new Map<string, Promise<void>>();

  constructor(
    private readonly driver: BlobDriver,
    private readonly metadata: MetadataStore,
    readonly options: IntegrityOptions,
  ) {}

  /** Whether a full read of this object must be hashed before its last byte goes out. */
  mustVerify(digest: string, size: number): boolean {
    if (size <= this.options.smallBytes || this.options.verifyReads === 'always') return true;
    if (this.options.verifyReads === 'small') return false;
    return !this.verified.has(digest);
  }

  /** Whether a ranged read (which cannot be checked by itself) should start a whole-object verification. */
  wantsBackgroundVerify(digest: string, size: number): boolean {
    if (this.verified.has(digest)) return false;
    return this.options.verifyReads !== 'small' || size <= this.options.smallBytes;
  }

  check(digest: ParsedDigest, size: number): DigestCheck {
    return new DigestCheck(digest, size, () => this.remember(digest.value));
  }

  remember(digest: string): void {
    if (this.options.rememberVerified <= 0) return;
    this.verified.delete(digest);
    this.verified.set(digest, true);
    // Oldest first out: a Map iterates in insertion order.
    while (this.verified.size > this.options.rememberVerified) {
      const oldest = this.verified.keys().next().value;
      if (oldest === undefined) break;
      this.verified.delete(oldest);
    }
  }

  forget(digest: string): void {
    this.verified.delete(digest);
  }

  /**
   * Moves the object out of the blob layout so it is no longer served and the next push re-creates it,
   * and marks the digest missing so HEAD stops claiming it. Never throws: the caller is already failing.
   */
  async quarantine(digest: ParsedDigest, reason: Exclude<IntegrityReason, 'missing'>, kind: ObjectKind, foundBy: FoundBy): Promise<void> {
    this.forget(digest.value);
    const key = blobKey(digest);
    const target = quarantineKey(digest, reason, Date.now());
    let moved = false;
    try {
      await this.driver.move(key, target);
      moved = true;
    } catch (err) {
      // Not found: another request quarantined it first.
      if (!(err instanceof BlobNotFoundError)) this.options.log?.error({ err, digest: digest.value, key }, 'could not quarantine a corrupt object');
    }
    await this.markMissing(digest.value);
    await this.logFinding('blob_corrupt', digest.value, `${kind} failed verification (${reason}), found by ${foundBy}`);
    this.report({ reason, kind, foundBy, digest: digest.value, key, ...(moved ? { quarantineKey: target } : {}) });
  }

  /** Storage was found not to hold the object at all. */
  async missing(digest: ParsedDigest, kind: ObjectKind, foundBy: FoundBy): Promise<void> {
    this.forget(digest.value);
    await this.markMissing(digest.value);
    await this.logFinding('blob_missing', digest.value, `${kind} missing from storage, found by ${foundBy}`);
    this.report({ reason: 'missing', kind, foundBy, digest: digest.value, key: blobKey(digest) });
  }

  /** Reads the stored object whole and hashes it (scrub, and ranged reads of unverified blobs). */
  async verifyStored(digest: ParsedDigest, expectedSize: number | undefined, options: VerifyStoredOptions = {}): Promise<VerifyResult> {
    let stream: Readable;
    try {
      stream = await this.driver.reader(blobKey(digest), options.signal ? { signal: options.signal } : {});
    } catch (err) {
      if (err instanceof BlobNotFoundError) return { ok: false, reason: 'missing', bytes: 0 };
      throw err;
    }
    const hash = createHash(digest.algorithm);
    const started = performance.now();
    let bytes = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
      const rate = options.bytesPerSecond;
      if (rate !== undefined && rate > 0) {
        const due = (bytes / rate) * 1000 - (performance.now() - started);
        if (due > 1) await sleep(due, undefined, options.signal ? { signal: options.signal } : {});
      }
    }
    if (expectedSize !== undefined && bytes !== expectedSize) return { ok: false, reason: 'size_mismatch', bytes };
    if (hash.digest('hex') !== digest.hex) return { ok: false, reason: 'digest_mismatch', bytes };
    this.remember(digest.value);
    return { ok: true, bytes };
  }

  /**
   * Verifies a blob in the background, once at a time per digest, quarantining it if bad: a ranged
   * read cannot be checked by itself, so it rides a whole-object check instead.
   */
  verifyInBackground(digest: ParsedDigest, size: number): void {
    if (this.background.has(digest.value)) return;
    const run = (async () => {
      const result = await this.verifyStored(digest, size);
      if (!result.ok) {
        if (result.reason === 'missing') await this.missing(digest, 'blob', 'read');
        else await this.quarantine(digest, result.reason, 'blob', 'read');
      }
    })()
      .catch((err: unknown) => this.options.log?.warn({ err, digest: digest.value }, 'background blob verification failed'))
      .finally(() => this.background.delete(digest.value));
    this.background.set(digest.value, run);
  }

  /** Resolves once every background verification started so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.background.values()]);
  }

  private async markMissing(digest: string): Promise<void> {
    try {
      await this.metadata.markBlobMissing(digest);
    } catch (err) {
      this.options.log?.error({ err, digest }, 'could not mark a blob missing in metadata');
    }
  }

  /** The finding in the event log (scanners and operators hang off it); never throws. */
  private async logFinding(kind: 'blob_corrupt' | 'blob_missing', digest: string, detail: string): Promise<void> {
    try {
      await this.metadata.events.append([{ id: newRecordId(), at: Date.now(), origin: INTEGRITY_ORIGIN, kind, digest, detail }]);
    } catch (err) {
      this.options.log?.warn({ err, digest }, 'could not log an integrity finding in the event log');
    }
  }

  private report(event: IntegrityEvent): void {
    const { reason, kind, foundBy, digest, key, quarantineKey: moved } = event;
    this.options.log?.warn(
      { reason, kind, foundBy, digest, key, ...(moved ? { quarantineKey: moved } : {}) },
      reason === 'missing' ? `stored ${kind} is missing from storage` : `stored ${kind} failed verification (${reason}) and was quarantined`,
    );
    try {
      this.options.onEvent?.(event);
    } catch {
      // A broken metrics hook must not turn a detected corruption into a crash.
    }
  }
}

/** Whether `bytes` hash to `digest`. */
export function matchesDigest(bytes: Buffer, digest: ParsedDigest): boolean {
  return createHash(digest.algorithm).update(bytes).digest('hex') === digest.hex;
}
