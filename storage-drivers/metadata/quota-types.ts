import type { Digest } from './types.js';

/*
 * What storage quotas keep in the metadata store, per namespace (see docs/quotas.md):
 *
 *  - digests: each digest the namespace holds, with its size, and the set of holders that hold it
 *    there (`b <repo>` for a blob link, `m <repo>` for a manifest). A digest's bytes count when its
 *    first holder arrives and are freed when its last one leaves, so a blob linked in ten
 *    repositories of one namespace counts once.
 *  - usage: the sum of those sizes and the number of digests.
 *  - reservations: bytes in flight (uploads streaming), each with an expiry renewed while it runs, so
 *    a crashed process cannot hold bytes forever.
 *
 * Repository keys live elsewhere (another Cluster slot), so the namespace record is its own atomic
 * step: callers charge BEFORE the repository link is made and release AFTER it is gone. A crash in
 * between can only over-count, until `berth metadata rebuild` recounts.
 */

export interface NamespaceUsage {
  /** Bytes of the digests the namespace holds, each counted once. */
  bytes: number;
  /** How many digests it holds. */
  digests: number;
  /** Bytes of unexpired reservations (uploads in flight). */
  reserved: number;
}

/** A refusal: the namespace as it stood when the step was refused (nothing changed). */
export interface QuotaRefusal {
  ok: false;
  usage: NamespaceUsage;
}

export type ChargeResult = { ok: true; added: boolean; usage: NamespaceUsage } | QuotaRefusal;

export type ReserveResult = { ok: true; usage: NamespaceUsage } | QuotaRefusal;

export interface ChargeOptions {
  /** Refuse (change nothing) when the digest is new to the namespace and used + reserved + size would exceed this. */
  limit?: number | undefined;
  /** A reservation of the namespace released in the same step (an upload's bytes, now counted as the blob). Not counted against the limit. */
  reservation?: string | undefined;
  /** ms since epoch: reservations expired by then do not count. */
  now: number;
}

export interface ReserveOptions {
  /** Refuse (change nothing) when used + other live reservations + bytes would exceed this. */
  limit?: number | undefined;
  /** ms since epoch after which the reservation no longer counts. */
  until: number;
  now: number;
}

/** One digest a namespace holds (a page of QuotaMetadata.digests). */
export interface NamespaceDigest {
  digest: Digest;
  size: number;
}

export interface DigestPage {
  digests: NamespaceDigest[];
  /** Pass as `cursor` for the next page; absent on the last one. */
  next?: string;
}

/** A namespace's whole record, as a rebuild recounts it: each digest with its size and holders. */
export interface NamespaceRecount {
  digest: Digest;
  size: number;
  holders: string[];
}

/**
 * Quotas' part of the metadata store. Every method is atomic on its own (a Lua script on keys sharing
 * the namespace's `{ns:<name>}` hash tag in Redis, one step of the group commit in the embedded store).
 */
export interface QuotaMetadata {
  /**
   * Adds `holder` to `digest` in `ns`. Counts `size` if the digest is new to the namespace, unless a
   * `limit` refuses it. Idempotent: a holder already there adds nothing. `added` says the bytes counted now.
   */
  charge(ns: string, digest: Digest, size: number, holder: string, options: ChargeOptions): Promise<ChargeResult>;
  /** Removes `holder`; frees the digest's bytes when it was the last one. True when bytes were freed. Idempotent. */
  release(ns: string, digest: Digest, holder: string): Promise<boolean>;
  /** Sets reservation `id` of `ns` to `bytes` (growing or renewing it) unless `limit` refuses. */
  reserve(ns: string, id: string, bytes: number, options: ReserveOptions): Promise<ReserveResult>;
  /** Drops the reservation (finished, aborted). Idempotent. */
  unreserve(ns: string, id: string): Promise<void>;
  usage(ns: string, now: number): Promise<NamespaceUsage>;
  /** Whether `ns` holds `digest` (for the shared-bytes report). */
  holds(ns: string, digest: Digest): Promise<boolean>;
  /** The digests `ns` holds, at most `count` per page (order is the store's own; follow `next`). */
  digests(ns: string, cursor: string | undefined, count: number): Promise<DigestPage>;
  /** Namespaces that ever had a record, in byte order, `n` after `last`. */
  namespaces(page: { n: number; last?: string | undefined }): Promise<string[]>;
  /** Replaces the namespace's digests, holders and usage with `entries` (reservations stay): a rebuild's recount. */
  replace(ns: string, entries: NamespaceRecount[]): Promise<void>;
}

/** The holder string of a repository's blob link or manifest. */
export function holderOf(kind: 'blob' | 'manifest', repo: string): string {
  return `${kind === 'blob' ? 'b' : 'm'} ${repo}`;
}
