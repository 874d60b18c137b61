// The parts of a ChangeRecord a store knows before its atomic step (the caller's arguments and origin),
// built the same way by both stores. The "store" fields (event-types.ts) are added inside the step:
// by the embedded store in its write action, by a Redis script as a second stream field.
import { newRecordId, type ChangeRecord, type EventOrigin } from './event-types.js';
import type { BlobLink, Digest, LinkBlobOptions, ManifestRecord } from './types.js';

type Of<K extends ChangeRecord['kind']> = Extract<ChangeRecord, { kind: K }>;

export type ManifestPutDraft = Omit<Of<'manifest_put'>, 'previous' | 'repositoryCreated'>;
export type ManifestDeletedDraft = Omit<Of<'manifest_deleted'>, 'tags' | 'mediaType'>;
export type TagDeletedDraft = Omit<Of<'tag_deleted'>, 'digest'>;
export type BlobLinkedDraft = Omit<Of<'blob_linked'>, 'repositoryCreated'>;
export type BlobUnlinkedDraft = Of<'blob_unlinked'>;

function base(origin: EventOrigin): { id: string; at: number; origin: EventOrigin } {
  const at = Date.now();
  return { id: newRecordId(at), at, origin };
}

/** `tags` as the store applies them: each once, in the caller's order. */
export function manifestPutDraft(origin: EventOrigin, repository: string, manifest: ManifestRecord, tags: string[]): ManifestPutDraft {
  return {
    ...base(origin),
    kind: 'manifest_put',
    repository,
    digest: manifest.digest,
    mediaType: manifest.mediaType,
    size: manifest.size,
    ...(manifest.artifactType === undefined ? {} : { artifactType: manifest.artifactType }),
    ...(manifest.subject === undefined ? {} : { subject: manifest.subject }),
    tags: [...new Set(tags)],
  };
}

export function manifestDeletedDraft(origin: EventOrigin, repository: string, digest: Digest): ManifestDeletedDraft {
  return { ...base(origin), kind: 'manifest_deleted', repository, digest };
}

export function tagDeletedDraft(origin: EventOrigin, repository: string, tag: string): TagDeletedDraft {
  return { ...base(origin), kind: 'tag_deleted', repository, tag };
}

export function blobLinkedDraft(origin: EventOrigin, repository: string, link: BlobLink, options: LinkBlobOptions): BlobLinkedDraft {
  return {
    ...base(origin),
    kind: 'blob_linked',
    repository,
    digest: link.digest,
    size: link.size,
    via: options.via ?? 'push',
    ...(options.fromRepository === undefined ? {} : { fromRepository: options.fromRepository }),
  };
}

export function blobUnlinkedDraft(origin: EventOrigin, repository: string, digest: Digest): BlobUnlinkedDraft {
  return { ...base(origin), kind: 'blob_unlinked', repository, digest };
}

/** The event log's default maximum length (both stores). */
export const DEFAULT_EVENT_LOG_MAX_LENGTH = 100_000;

/** The configured maximum length, checked once when a store opens. */
export function eventLogMaxLength(configured: number | undefined): number {
  const value = configured ?? DEFAULT_EVENT_LOG_MAX_LENGTH;
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`the event log's maximum length must be a positive integer, got ${value}`);
  return value;
}

/** Log positions are checked before they reach a store's query, so a bad one is the caller's error, not a backend failure. */
export class InvalidPositionError extends RangeError {
  constructor(position: string) {
    super(`not an event log position of this store: ${JSON.stringify(position.slice(0, 64))}`);
    this.name = 'InvalidPositionError';
  }
}
