import { hostname } from 'node:os';
import type { BerthConfig } from '../../config.js';
import type { EventFormat } from './config.js';
import type { EventAction, RegistryEvent } from './event.js';

/*
 * The bodies endpoints receive, one POST per event.
 *
 * cloudevents: CloudEvents 1.0 in structured mode; `data` is the event as Berth describes it. Every
 * action is delivered.
 *
 * distribution: the envelope distribution's notifications send, for receivers written against it.
 * Actions that have no distribution equivalent are not delivered in this format (formatEvent gives
 * null and the delivery loop counts them as filtered out): repository.created, tag.moved (the
 * manifest.pushed of the same put already carries the tag, as distribution sends it), pulls.counted,
 * blob.collected, blob.corrupt and blob.missing.
 */

export const DISTRIBUTION_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v2+json';
export const CLOUDEVENTS_MEDIA_TYPE = 'application/cloudevents+json';
/** What distribution reports as the media type of a blob (it does not know what a layer holds). */
const BLOB_MEDIA_TYPE = 'application/octet-stream';

export interface FormattedBody {
  body: Buffer;
  contentType: string;
}

export interface FormatOptions {
  /** The registry's base URL as clients reach it, without a trailing slash (distribution's target.url). */
  baseUrl?: string | undefined;
  /** CloudEvents `source`. */
  source: string;
  /** distribution's `source` record: this node's address and this process's instance id. */
  instance: { addr: string; instanceID: string };
}

/** `berth://<host of the public URL>`, or `berth` when there is none. */
export function defaultEventSource(publicUrl: string | undefined): string {
  if (publicUrl === undefined) return 'berth';
  return `berth://${new URL(publicUrl).host}`;
}

/**
 * The registry's base URL: http.publicUrl, or else what the listener address says (a wildcard
 * address replaced by this machine's name, since a receiver cannot reach 0.0.0.0).
 */
export function registryBaseUrl(config: Pick<BerthConfig, 'http'>): string {
  if (config.http.publicUrl !== undefined) return config.http.publicUrl.replace(/\/+$/, '');
  const scheme = config.http.tls ? 'https' : 'http';
  const wildcard = ['', '0.0.0.0', '::', '[::]'].includes(config.http.host);
  const host = wildcard ? hostname() : config.http.host.includes(':') && !config.http.host.startsWith('[') ? `[${config.http.host}]` : config.http.host;
  return `${scheme}://${host}:${config.http.port}`;
}

/** Format options from the configuration; `instanceID` names this process (new at each start). */
export function formatOptionsFor(config: Pick<BerthConfig, 'http' | 'events'>, instanceID: string): FormatOptions {
  return {
    baseUrl: registryBaseUrl(config),
    source: config.events.source ?? defaultEventSource(config.http.publicUrl),
    instance: { addr: `${hostname()}:${config.http.port}`, instanceID },
  };
}

/** The body for `format`, or null when the format has no way to say this event. */
export function formatEvent(format: EventFormat, event: RegistryEvent, options: FormatOptions): FormattedBody | null {
  return format === 'distribution' ? distributionBody(event, options) : cloudEventBody(event, options);
}

// ---- CloudEvents ----

/**
 * `<repo>:<tag>`, `<repo>@<digest>` or `<repo>`; the digest alone for events of no repository. A push
 * with tags is named by its first tag, as a person would name the image (all tags are in data).
 */
export function cloudEventSubject(event: RegistryEvent): string | undefined {
  const { repository, target } = event;
  if (repository === undefined) return target.digest;
  const tag = target.tag ?? (event.action === 'manifest.pushed' ? target.tags?.[0] : undefined);
  if (tag !== undefined) return `${repository}:${tag}`;
  if (target.digest !== undefined) return `${repository}@${target.digest}`;
  return repository;
}

export function cloudEventBody(event: RegistryEvent, options: FormatOptions): FormattedBody {
  const data: Record<string, unknown> = { action: event.action };
  if (event.repository !== undefined) data.repository = event.repository;
  data.target = event.target;
  data.actor = event.actor;
  if (event.request) data.request = event.request;
  if (event.system) data.system = event.system;
  const envelope: Record<string, unknown> = {
    specversion: '1.0',
    id: event.id,
    source: options.source,
    type: `io.berth.${event.action}`,
  };
  const subject = cloudEventSubject(event);
  if (subject !== undefined) envelope.subject = subject;
  envelope.time = event.time;
  envelope.datacontenttype = 'application/json';
  envelope.data = data;
  return { body: Buffer.from(JSON.stringify(envelope)), contentType: CLOUDEVENTS_MEDIA_TYPE };
}

// ---- distribution ----

type DistributionAction = 'push' | 'pull' | 'mount' | 'delete';

/** distribution's action and the request method that makes such a change. */
const DISTRIBUTION_ACTIONS: Partial<Record<EventAction, { action: DistributionAction; method: string; kind: 'manifests' | 'blobs' }>> = {
  'manifest.pushed': { action: 'push', method: 'PUT', kind: 'manifests' },
  'manifest.pulled': { action: 'pull', method: 'GET', kind: 'manifests' },
  'manifest.deleted': { action: 'delete', method: 'DELETE', kind: 'manifests' },
  'tag.deleted': { action: 'delete', method: 'DELETE', kind: 'manifests' },
  'blob.pushed': { action: 'push', method: 'PUT', kind: 'blobs' },
  'blob.mounted': { action: 'mount', method: 'POST', kind: 'blobs' },
  'blob.deleted': { action: 'delete', method: 'DELETE', kind: 'blobs' },
};

export interface DistributionTarget {
  mediaType?: string;
  digest?: string;
  size?: number;
  length?: number;
  repository: string;
  fromRepository?: string;
  url?: string;
  tag?: string;
}

export interface DistributionEvent {
  id: string;
  timestamp: string;
  action: DistributionAction;
  target: DistributionTarget;
  request: { id: string; addr?: string; host?: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

/** The events distribution would send for this one (several for a push with several tags), or []. */
export function distributionEvents(event: RegistryEvent, options: FormatOptions): DistributionEvent[] {
  const mapping = DISTRIBUTION_ACTIONS[event.action];
  if (!mapping || event.repository === undefined) return [];
  const { target } = event;
  const repository = event.repository;
  const base: DistributionTarget = { repository };
  // As distribution sends them: deletes name what went (digest, or the tag alone), pushes and pulls
  // describe the content and link to it.
  if (mapping.action === 'delete') {
    if (event.action === 'tag.deleted') base.tag = target.tag as string;
    else base.digest = target.digest as string;
  } else {
    const mediaType = target.mediaType ?? (mapping.kind === 'blobs' ? BLOB_MEDIA_TYPE : undefined);
    if (mediaType !== undefined) base.mediaType = mediaType;
    if (target.digest !== undefined) base.digest = target.digest;
    if (target.size !== undefined) {
      base.size = target.size;
      base.length = target.size;
    }
    if (target.fromRepository !== undefined) base.fromRepository = target.fromRepository;
    if (options.baseUrl !== undefined && target.digest !== undefined) base.url = `${options.baseUrl}/v2/${repository}/${mapping.kind}/${target.digest}`;
    if (target.tag !== undefined) base.tag = target.tag;
  }
  const request: DistributionEvent['request'] = {
    id: event.request?.id ?? '',
    method: event.request ? mapping.method : '',
    useragent: event.request?.userAgent ?? '',
  };
  if (event.request?.address !== undefined) request.addr = event.request.address;
  if (options.baseUrl !== undefined && event.request) request.host = new URL(options.baseUrl).host;
  const actor: DistributionEvent['actor'] = event.actor.kind === 'anonymous' ? {} : { name: event.actor.name };
  const make = (id: string, t: DistributionTarget): DistributionEvent => ({
    id,
    timestamp: event.time,
    action: mapping.action,
    target: t,
    request: { ...request },
    actor: { ...actor },
    source: { ...options.instance },
  });
  const tags = event.action === 'manifest.pushed' ? (target.tags ?? []) : [];
  if (tags.length <= 1) return [make(event.id, tags.length === 1 ? { ...base, tag: tags[0] as string } : base)];
  return tags.map((tag, i) => make(`${event.id}-${i}`, { ...base, tag }));
}

export function distributionBody(event: RegistryEvent, options: FormatOptions): FormattedBody | null {
  const events = distributionEvents(event, options);
  if (events.length === 0) return null;
  return { body: Buffer.from(JSON.stringify({ events })), contentType: DISTRIBUTION_MEDIA_TYPE };
}
