import type { ChangeRecord, EventOrigin } from '../../../storage-drivers/metadata/event-types.js';

/*
 * What endpoints receive. The store logs one ChangeRecord per atomic change; a record expands into
 * the events it stands for (a manifest put can create a repository, push a manifest and move tags at
 * once). Expansion is a pure function of the record, so a record read again after a crash gives the
 * same events with the same ids, and receivers can drop duplicates by id.
 */

export const EVENT_ACTIONS = [
  'repository.created',
  'manifest.pushed',
  'manifest.pulled',
  'manifest.deleted',
  'tag.moved',
  'tag.deleted',
  'blob.pushed',
  'blob.mounted',
  'blob.deleted',
  'blob.collected',
  'blob.corrupt',
  'blob.missing',
  'pulls.counted',
] as const;

export type EventAction = (typeof EVENT_ACTIONS)[number];

/** What an event is about; which fields are set depends on the action (see expandRecord). */
export interface EventTarget {
  digest?: string;
  mediaType?: string;
  size?: number;
  artifactType?: string;
  /** The digest of the manifest's `subject`, for referrers (signatures, SBOMs, scan reports). */
  subject?: string;
  /** The one tag the event is about (tag.moved, tag.deleted, manifest.pulled by tag). */
  tag?: string;
  /** Several tags: every tag a manifest put set (manifest.pushed), or a delete dropped (manifest.deleted). */
  tags?: string[];
  /** tag.moved: the manifest the tag pointed at before. */
  previousDigest?: string;
  /** blob.mounted: the repository the blob was linked from, when known. */
  fromRepository?: string;
  /** pulls.counted: pulls in [from, to) (RFC 3339), and per tag. */
  count?: number;
  from?: string;
  to?: string;
  tagCounts?: Record<string, number>;
  /** blob.corrupt / blob.missing: what the check found. */
  detail?: string;
}

export interface EventActor {
  name: string;
  kind: EventOrigin['actorKind'];
}

/** The request that made the change, when a request made it. */
export interface EventRequest {
  id?: string;
  address?: string;
  userAgent?: string;
}

/** For changes a background job made: the policy that decided and why. */
export interface EventSystem {
  policy?: string;
  reason?: string;
}

export interface RegistryEvent {
  /** The record's id, or `<record id>.<n>` when the record expands to more than one event. */
  id: string;
  /** The record this event came from (dead letters keep records, not events). */
  recordId: string;
  action: EventAction;
  /** When the change happened, RFC 3339 in UTC. */
  time: string;
  /** Absent for changes that belong to no repository (blob.collected, blob.corrupt, blob.missing). */
  repository?: string;
  target: EventTarget;
  actor: EventActor;
  request?: EventRequest;
  system?: EventSystem;
}

type Draft = Pick<RegistryEvent, 'action' | 'target'> & { repository?: string };

function drafts(record: ChangeRecord): Draft[] {
  switch (record.kind) {
    case 'manifest_put': {
      const out: Draft[] = [];
      const repository = record.repository;
      if (record.repositoryCreated) out.push({ action: 'repository.created', repository, target: {} });
      const pushed: EventTarget = { digest: record.digest, mediaType: record.mediaType, size: record.size, tags: [...record.tags] };
      if (record.artifactType !== undefined) pushed.artifactType = record.artifactType;
      if (record.subject !== undefined) pushed.subject = record.subject;
      out.push({ action: 'manifest.pushed', repository, target: pushed });
      record.tags.forEach((tag, i) => {
        const previous = record.previous[i] ?? '';
        // '' is a new tag, the same digest a re-push: neither moved anything.
        if (previous === '' || previous === record.digest) return;
        out.push({ action: 'tag.moved', repository, target: { tag, digest: record.digest, mediaType: record.mediaType, previousDigest: previous } });
      });
      return out;
    }
    case 'manifest_deleted': {
      const target: EventTarget = { digest: record.digest, tags: [...record.tags] };
      if (record.mediaType !== undefined) target.mediaType = record.mediaType;
      return [{ action: 'manifest.deleted', repository: record.repository, target }];
    }
    case 'tag_deleted':
      return [{ action: 'tag.deleted', repository: record.repository, target: { tag: record.tag, digest: record.digest } }];
    case 'blob_linked': {
      const out: Draft[] = [];
      if (record.repositoryCreated) out.push({ action: 'repository.created', repository: record.repository, target: {} });
      const target: EventTarget = { digest: record.digest, size: record.size };
      if (record.via === 'mount') {
        if (record.fromRepository !== undefined) target.fromRepository = record.fromRepository;
        out.push({ action: 'blob.mounted', repository: record.repository, target });
      } else {
        out.push({ action: 'blob.pushed', repository: record.repository, target });
      }
      return out;
    }
    case 'blob_unlinked':
      return [{ action: 'blob.deleted', repository: record.repository, target: { digest: record.digest } }];
    case 'blob_deleted': {
      const target: EventTarget = { digest: record.digest };
      if (record.size !== undefined) target.size = record.size;
      return [{ action: 'blob.collected', target }];
    }
    case 'pulls':
      return [
        {
          action: 'pulls.counted',
          repository: record.repository,
          target: { count: record.count, from: iso(record.from), to: iso(record.to), tagCounts: { ...record.tags } },
        },
      ];
    case 'pull': {
      const target: EventTarget = { digest: record.digest };
      if (record.tag !== undefined) target.tag = record.tag;
      if (record.mediaType !== undefined) target.mediaType = record.mediaType;
      if (record.size !== undefined) target.size = record.size;
      return [{ action: 'manifest.pulled', repository: record.repository, target }];
    }
    case 'blob_corrupt':
    case 'blob_missing': {
      const target: EventTarget = { digest: record.digest };
      if (record.detail !== undefined) target.detail = record.detail;
      return [{ action: record.kind === 'blob_corrupt' ? 'blob.corrupt' : 'blob.missing', target }];
    }
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The events a logged record stands for, in a fixed order with stable ids. */
export function expandRecord(record: ChangeRecord): RegistryEvent[] {
  const list = drafts(record);
  const { origin } = record;
  const request: EventRequest = {};
  if (origin.requestId !== undefined) request.id = origin.requestId;
  if (origin.address !== undefined) request.address = origin.address;
  if (origin.userAgent !== undefined) request.userAgent = origin.userAgent;
  const system: EventSystem = {};
  if (origin.policy !== undefined) system.policy = origin.policy;
  if (origin.reason !== undefined) system.reason = origin.reason;
  return list.map((draft, n) => {
    const event: RegistryEvent = {
      id: list.length === 1 ? record.id : `${record.id}.${n}`,
      recordId: record.id,
      action: draft.action,
      time: iso(record.at),
      target: draft.target,
      actor: { name: origin.actor, kind: origin.actorKind },
    };
    if (draft.repository !== undefined) event.repository = draft.repository;
    // Fresh objects per event: a consumer that edits one event must not change its siblings.
    if (Object.keys(request).length > 0) event.request = { ...request };
    if (Object.keys(system).length > 0) event.system = { ...system };
    return event;
  });
}

/** Every tag an event names: its tag, its tags, and the tags a pull count covers. */
export function eventTags(event: RegistryEvent): string[] {
  const { tag, tags, tagCounts } = event.target;
  const out: string[] = [];
  if (tag !== undefined) out.push(tag);
  if (tags) out.push(...tags);
  if (tagCounts) out.push(...Object.keys(tagCounts));
  return out;
}
