import type { Digest } from './types.js';

/*
 * The event outbox (see docs/events.md). A change the store makes for a request or a background job
 * is recorded, in the same atomic step as the change, as one ChangeRecord; delivery (server/registry/
 * events/) turns each record into the events endpoints receive. Records go into one ordered log:
 *
 *  - embedded: the log is a sub-database written in the change's own transaction.
 *  - Redis: a repository's changes are XADDed to that repository's outbox stream inside the change's
 *    script (same Cluster slot), and `relay` moves them into the `{events}` log, exactly once and in
 *    order per repository. Records that belong to no repository change (append) go to the log directly.
 *
 * Each endpoint's progress (a cursor into the log, the lease of the process delivering to it, its
 * status) is one EndpointState record changed by compare-and-set, and its dead letters are a list of
 * their own: the store knows nothing of HTTP, retries or formats.
 */

/** Who or what caused a change, recorded with it. */
export interface EventOrigin {
  /** A user or robot name, 'anonymous', or the system job: 'gc', 'retention', 'scrub'. */
  actor: string;
  actorKind: 'user' | 'robot' | 'anonymous' | 'operator' | 'system';
  /** The client's address and the request's id, for changes made by a request. */
  address?: string;
  requestId?: string;
  userAgent?: string;
  /** For system changes: the policy that decided (retention) and why ('untagged', 'keep_last', …). */
  policy?: string;
  reason?: string;
}

interface RecordBase {
  /** Unique and stable (the events' ids derive from it), time-ordered: see newRecordId. */
  id: string;
  /** ms since epoch. */
  at: number;
  origin: EventOrigin;
}

/**
 * What one atomic change did, built by the store from the change's arguments and the caller's
 * EventOrigin. Fields marked "store" come from inside the atomic step: only there is it known what a
 * tag pointed at before, or which tags a delete dropped.
 */
export type ChangeRecord =
  | (RecordBase & {
      kind: 'manifest_put';
      repository: string;
      digest: Digest;
      mediaType: string;
      size: number;
      artifactType?: string;
      subject?: Digest;
      tags: string[];
      /** store: per tag (same order), the digest it pointed at before, '' for none. */
      previous: string[];
      /** store: nothing had been linked in the repository before this change. */
      repositoryCreated: boolean;
    })
  | (RecordBase & {
      kind: 'manifest_deleted';
      repository: string;
      digest: Digest;
      mediaType?: string;
      /** store: the tags the delete dropped. */
      tags: string[];
    })
  | (RecordBase & { kind: 'tag_deleted'; repository: string; tag: string; digest: Digest })
  | (RecordBase & {
      kind: 'blob_linked';
      repository: string;
      digest: Digest;
      size: number;
      /** push: an upload finished; mount: linked from another repository (fromRepository, when known). */
      via: 'push' | 'mount';
      fromRepository?: string;
      /** store: nothing had been linked in the repository before this change. */
      repositoryCreated: boolean;
    })
  | (RecordBase & { kind: 'blob_unlinked'; repository: string; digest: Digest })
  /** Garbage collection deleted a blob's bytes from storage (no repository holds it any more). */
  | (RecordBase & { kind: 'blob_deleted'; digest: Digest; size?: number })
  /** Pulls of one repository over an interval, counted (events.pulls: aggregated). */
  | (RecordBase & { kind: 'pulls'; repository: string; from: number; to: number; count: number; tags: Record<string, number> })
  /** One pull (events.pulls: each). */
  | (RecordBase & { kind: 'pull'; repository: string; digest: Digest; tag?: string; mediaType?: string; size?: number })
  /** The scrub (or a verified read) found a blob's bytes corrupt or missing in storage. */
  | (RecordBase & { kind: 'blob_corrupt' | 'blob_missing'; digest: Digest; detail?: string });

export type ChangeKind = ChangeRecord['kind'];

/** A record in the log, with its place. */
export interface LoggedRecord {
  /** Opaque and ordered within one store: pass it back as `after`. */
  position: string;
  /** Counts up by one per logged record: a gap after a cursor means the log dropped records. */
  seq: number;
  record: ChangeRecord;
}

/** An endpoint's shared delivery state; every change is a compare-and-set on `revision`. */
export interface EndpointState {
  revision: number;
  /** The last log position fully handled (delivered, filtered out or dead-lettered); absent: none yet. */
  cursor?: string;
  /** The seq at the cursor, to tell dropped records from a gap-free read. */
  cursorSeq?: number;
  /** The process delivering to the endpoint now, and until when its claim holds (ms since epoch). */
  holder?: string;
  leaseUntil?: number;
  /**
   * Attempts so far of the events in hand that failed and are being retried, by event id: a process
   * taking the endpoint over goes on counting instead of starting again.
   */
  attempts?: Record<string, number>;
  /** An operator asked for the dead letters to be delivered again (ms since epoch). */
  replayDeadLettersAt?: number;
  delivered?: number;
  failedAttempts?: number;
  deadLettered?: number;
  dropped?: number;
  lastSuccessAt?: number;
  lastFailureAt?: number;
  lastError?: string;
  /** The endpoint is failing: the next attempt is not before this (ms since epoch). */
  retryAt?: number;
}

/** An event given up on after its retries, kept for an operator to inspect and replay. */
export interface DeadLetter {
  /** The event's id (unique per endpoint's list). */
  id: string;
  /** The record it came from. */
  record: ChangeRecord;
  attempts: number;
  lastError: string;
  deadAt: number;
}

export interface EventMetadata {
  /**
   * Appends records straight to the log: changes that are not a repository's metadata change in this
   * store (blob deletions, pull counts, scrub findings). A caller that retries after a crash may log
   * a record twice; it keeps its id, so consumers can drop the duplicate.
   */
  append(records: ChangeRecord[]): Promise<void>;
  /**
   * Redis: moves repositories' outbox records into the log, at most `limit`, exactly once and in order
   * per repository; safe to run in many processes at once. Embedded: nothing to move. Returns how many moved.
   * `sweep`: first look through every repository for an outbox the pending index lost (also done by
   * itself every so many relays, and on a process's first).
   */
  relay(limit: number, options?: { sweep?: boolean }): Promise<number>;
  /** Log records after `after` (undefined: from the oldest kept), oldest first, at most `limit`. */
  read(after: string | undefined, limit: number): Promise<LoggedRecord[]>;
  /** The newest records, newest first, before `before` when given. */
  recent(limit: number, before?: string): Promise<LoggedRecord[]>;
  /** A position to read after so that the first record read is the first logged at or after `time`. */
  positionBefore(time: number): Promise<string | undefined>;
  /** The newest position and its seq (undefined: empty log), and how many records the log keeps. */
  head(): Promise<{ position: string; seq: number; length: number } | undefined>;

  getEndpoint(name: string): Promise<EndpointState | undefined>;
  /** Compare-and-set: `expectedRevision` 0 creates. False when another change came first. */
  updateEndpoint(name: string, expectedRevision: number, next: EndpointState): Promise<boolean>;
  /** Every endpoint that has state, by name. */
  listEndpoints(): Promise<string[]>;

  /** Adds (or replaces, by id) a dead letter; the list keeps at most `max`, dropping the oldest. */
  putDeadLetter(endpoint: string, letter: DeadLetter, max: number): Promise<void>;
  /** Dead letters in id order, after `after`, at most `limit`. */
  listDeadLetters(endpoint: string, after: string | undefined, limit: number): Promise<DeadLetter[]>;
  countDeadLetters(endpoint: string): Promise<number>;
  deleteDeadLetter(endpoint: string, id: string): Promise<boolean>;
}

let lastMs = 0;
let counter = 0;

/**
 * A record id: the time in base 36 (fixed width, so ids sort by time), a per-process counter and
 * random bits (unique across processes without coordination).
 */
export function newRecordId(now: number = Date.now()): string {
  if (now === lastMs) counter++;
  else {
    lastMs = now;
    counter = 0;
  }
  const random = Math.floor(Math.random() * 36 ** 6)
    .toString(36)
    .padStart(6, '0');
  return `${now.toString(36).padStart(9, '0')}${counter.toString(36).padStart(3, '0')}${random}`;
}
