// `berth scrub` and the background scrub: hash every stored object under blobs/, quarantine what is
// bad, then check that every journaled link still has its bytes. Resumable and fenced by a lease.
import { randomUUID } from 'node:crypto';
import { BlobNotFoundError, type BlobDriver } from '../../storage-drivers/blob/types.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import type { Integrity } from './integrity.js';
import { blobKey, BLOBS_ROOT, JOURNAL_ROOT, parseBlobKey, parseJournalDigestPath, parseJournalKey, SCRUB_CURSOR_KEY } from './keys.js';
import type { ParsedDigest } from './references.js';
import type { DigestAlgorithm } from './references.js';

export const SCRUB_LEASE = 'scrub';

export interface ScrubProgress {
  /** `objects` while hashing stored objects, `links` while checking journaled links have their bytes. */
  phase: 'objects' | 'links';
  /** Objects hashed in this run, and how many there are left to hash in this pass. */
  checked: number;
  remaining: number;
  bytes: number;
  corrupt: number;
  missing: number;
  /** Stored objects skipped because an earlier run had already checked them (resumed from the cursor). */
  resumedAfter?: string;
}

export interface ScrubResult extends ScrubProgress {
  /** False when stopped (signal) before the pass ended; the cursor then says where to go on. */
  complete: boolean;
  /** Digests quarantined or found missing. */
  bad: { digest: string; reason: string }[];
}

export interface ScrubOptions {
  bytesPerSecond?: number;
  /** Ignore a saved cursor and start the pass from the beginning. */
  restart?: boolean;
  leaseMs: number;
  /** Progress every this many milliseconds (and at the end of each phase); the cursor is saved as often. */
  progressEveryMs?: number;
  onProgress?: (progress: ScrubProgress) => void;
  signal?: AbortSignal;
  /** Who holds the lease (defaults to a random id). */
  holder?: string;
}

export class ScrubBusyError extends Error {
  constructor() {
    super('another scrub holds the lease (it renews it while running); try again later');
    this.name = 'ScrubBusyError';
  }
}

interface Cursor {
  after: string;
}

function digestFrom(algorithm: string, hex: string): ParsedDigest {
  return { algorithm: algorithm as DigestAlgorithm, hex, value: `${algorithm}:${hex}` };
}

async function readCursor(driver: BlobDriver): Promise<string | undefined> {
  try {
    const parsed = JSON.parse((await driver.get(SCRUB_CURSOR_KEY)).toString('utf8')) as Partial<Cursor>;
    return typeof parsed.after === 'string' ? parsed.after : undefined;
  } catch (err) {
    // No cursor, or an unreadable one: start from the beginning (scrubbing twice is harmless).
    if (err instanceof BlobNotFoundError || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

export async function scrub(driver: BlobDriver, metadata: MetadataStore, integrity: Integrity, options: ScrubOptions): Promise<ScrubResult> {
  const holder = options.holder ?? randomUUID();
  if (!(await metadata.acquireLease(SCRUB_LEASE, holder, options.leaseMs))) throw new ScrubBusyError();
  // Renewed on a timer, not per object: hashing one large blob at the rate limit can outlast the lease.
  // A renewal refused means the lease expired and another process took it: this one stops.
  const lost = new AbortController();
  const renew = setInterval(
    () => {
      metadata.acquireLease(SCRUB_LEASE, holder, options.leaseMs).then(
        (held) => {
          if (!held) lost.abort();
        },
        () => undefined,
      );
    },
    Math.max(1000, Math.floor(options.leaseMs / 3)),
  );
  renew.unref();
  const signal = options.signal ? AbortSignal.any([options.signal, lost.signal]) : lost.signal;
  try {
    return await run(driver, integrity, { ...options, signal });
  } finally {
    clearInterval(renew);
    await metadata.releaseLease(SCRUB_LEASE, holder).catch(() => undefined);
  }
}

async function run(driver: BlobDriver, integrity: Integrity, options: ScrubOptions & { signal: AbortSignal }): Promise<ScrubResult> {
  const after = options.restart ? undefined : await readCursor(driver);
  const keys: string[] = [];
  for await (const key of driver.list(BLOBS_ROOT)) if (parseBlobKey(key) && (after === undefined || key > after)) keys.push(key);
  // list() has no order; sorting gives the cursor a meaning across runs.
  keys.sort();
  const result: ScrubResult = {
    phase: 'objects',
    checked: 0,
    remaining: keys.length,
    bytes: 0,
    corrupt: 0,
    missing: 0,
    complete: false,
    bad: [],
    ...(after === undefined ? {} : { resumedAfter: after }),
  };
  const every = options.progressEveryMs ?? 5000;
  let lastReport = performance.now();
  const report = async (cursor: string | undefined) => {
    lastReport = performance.now();
    if (cursor !== undefined) await driver.put(SCRUB_CURSOR_KEY, Buffer.from(JSON.stringify({ after: cursor } satisfies Cursor)));
    const { bad: _bad, complete: _complete, ...progress } = result;
    options.onProgress?.(progress);
  };

  for (const key of keys) {
    if (options.signal.aborted) {
      await report(undefined);
      return result;
    }
    const parsed = parseBlobKey(key) as { algorithm: string; hex: string };
    const digest = digestFrom(parsed.algorithm, parsed.hex);
    const verified = await integrity
      .verifyStored(digest, undefined, { ...(options.bytesPerSecond ? { bytesPerSecond: options.bytesPerSecond } : {}), signal: options.signal })
      .catch((err: unknown) => {
        if (options.signal.aborted) return undefined;
        throw err;
      });
    if (verified === undefined) {
      await report(undefined);
      return result;
    }
    result.bytes += verified.bytes;
    if (!verified.ok) {
      // Missing here means deleted since the listing: nothing to quarantine, and the link check below catches a real loss.
      if (verified.reason !== 'missing') {
        result.corrupt++;
        result.bad.push({ digest: digest.value, reason: verified.reason });
        await integrity.quarantine(digest, verified.reason, 'blob', 'scrub');
      }
    }
    result.checked++;
    result.remaining--;
    if (performance.now() - lastReport >= every) await report(key);
  }
  await report(keys[keys.length - 1]);

  // Links whose bytes are gone (deleted files, a lost bucket prefix): HEAD must stop claiming them.
  result.phase = 'links';
  const seen = new Set<string>();
  for await (const key of driver.list(JOURNAL_ROOT)) {
    if (options.signal.aborted) return result;
    const entry = parseJournalKey(key);
    const named = entry && entry.kind !== 'tags' ? parseJournalDigestPath(entry.rest) : undefined;
    if (!entry || !named) continue;
    const digest = digestFrom(named.algorithm, named.hex);
    if (seen.has(digest.value)) continue;
    seen.add(digest.value);
    try {
      await driver.stat(blobKey(digest));
    } catch (err) {
      if (!(err instanceof BlobNotFoundError)) throw err;
      // Quarantined in this pass: already counted.
      if (result.bad.some((b) => b.digest === digest.value)) continue;
      result.missing++;
      result.bad.push({ digest: digest.value, reason: 'missing' });
      await integrity.missing(digest, entry.kind === 'manifests' ? 'manifest' : 'blob', 'scrub');
    }
  }
  result.complete = true;
  // The pass is done: the next one starts from the beginning.
  await driver.delete(SCRUB_CURSOR_KEY);
  await report(undefined);
  return result;
}
