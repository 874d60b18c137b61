// What replication needs of a registry, whichever side it is on: this Berth (through its domain
// services, so quotas, immutable tags, GC pins and events apply as for a push) or another registry
// over HTTP. The copier and the reconciler see only this interface, so a push rule (this Berth →
// a target) and a pull rule (a source → this Berth) are the same code with the sides swapped.
import type { Readable } from 'node:stream';

/** A manifest as a HEAD tells it. */
export interface ManifestRef {
  digest: string;
  mediaType: string;
  size: number;
}

export interface FetchedManifest extends ManifestRef {
  /** Exactly the bytes stored: replication preserves digests, so it never re-encodes a manifest. */
  bytes: Buffer;
}

/** A referrer of a subject, as the referrers API lists it. */
export interface ReferrerRef extends ManifestRef {
  artifactType?: string | undefined;
}

/** A blob's bytes from `offset` to its end. */
export interface BlobBody {
  /** The blob's whole size (not what is left after `offset`). */
  size: number;
  stream: Readable;
}

/** Reopens a blob's source at `offset`: an upload resumes from where the target says it got to. */
export type OpenBlobAt = (offset: number, signal: AbortSignal) => Promise<Readable>;

export interface PutBlobOptions {
  /** Repositories on this endpoint that may hold the blob already: a mount is tried from each first. */
  mountFrom?: readonly string[] | undefined;
  /** Upload in chunks of this many bytes (a failed chunk is retried from the offset the target reports). */
  chunkBytes: number;
  signal: AbortSignal;
}

/** What a blob copy came to: already there, linked from another repository, or sent. */
export type PutBlobResult = 'present' | 'mounted' | 'uploaded';

/** A tag delete the endpoint cannot do by tag (distribution 2.x): the caller decides whether a delete by digest is safe. */
export type DeleteTagResult = 'deleted' | 'absent' | 'unsupported';

export interface ReplicationEndpoint {
  /** Names the side in status, logs and metrics: 'local' or the configured registry's name. */
  readonly name: string;

  /** Repository names (the catalog), in order; an endpoint without a catalog throws a clear error. */
  repositories(signal: AbortSignal): AsyncIterable<string>;
  /** Every tag of `repo`; undefined when the repository does not exist there. */
  tags(repo: string, signal: AbortSignal): Promise<string[] | undefined>;
  /** undefined when there is no such manifest. */
  headManifest(repo: string, reference: string, signal: AbortSignal): Promise<ManifestRef | undefined>;
  getManifest(repo: string, reference: string, signal: AbortSignal): Promise<FetchedManifest | undefined>;
  /** Manifests whose subject is `digest`. An endpoint without the referrers API answers from the tag schema (`sha256-<hex>`). */
  referrers(repo: string, digest: string, signal: AbortSignal): Promise<ReferrerRef[]>;
  hasBlob(repo: string, digest: string, signal: AbortSignal): Promise<boolean>;
  /** The blob's bytes from `offset`; the reader (the other side's upload) verifies the digest. */
  openBlob(repo: string, digest: string, offset: number, signal: AbortSignal): Promise<BlobBody>;

  /** Stores blob `digest` of `size` bytes in `repo`, unless it is there; mounts when it can. Verified by digest on arrival. */
  putBlob(repo: string, digest: string, size: number, open: OpenBlobAt, options: PutBlobOptions): Promise<PutBlobResult>;
  /**
   * Stores the manifest under `reference` (a tag, or its digest), byte for byte. `partial`: an index
   * some of whose children were left out on purpose (the rule's platform filter); an endpoint that can
   * store it anyway does (this Berth, as its pull-through cache does), another refuses it with a clear error.
   */
  putManifest(repo: string, reference: string, manifest: FetchedManifest, signal: AbortSignal, partial?: boolean): Promise<void>;
  deleteTag(repo: string, tag: string, signal: AbortSignal): Promise<DeleteTagResult>;
  /** Deletes the manifest and so every tag pointing at it; false when it was not there. */
  deleteManifest(repo: string, digest: string, signal: AbortSignal): Promise<boolean>;
  close(): void;
}
