// What the deploy hook sends for an event: which tags it forwards, and the request body, a JSON
// template whose strings may hold {{placeholders}} filled in per tag. The template is checked once at
// start-up, so a typo fails the hook, not the first deploy.
import { firstMatch, tagPatternRegExp } from '../server/registry/retention/policy.js';
import type { BerthCloudEvent } from './hook-receiver.js';

/** What a template can ask for, per tag. */
export interface DeployFields {
  action: string;
  eventId: string;
  eventType: string;
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  /** host/repository:tag */
  image: string;
  /** host/repository@digest: what a deployment should pin. */
  reference: string;
  previousDigest: string;
  actor: string;
  time: string;
}

export const FIELD_NAMES: ReadonlySet<string> = new Set([
  'action',
  'eventId',
  'eventType',
  'repository',
  'tag',
  'digest',
  'mediaType',
  'image',
  'reference',
  'previousDigest',
  'actor',
  'time',
]);

const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g;

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** Fields that need --registry-host: without it there is no pullable reference to give. */
const HOST_FIELDS = new Set(['image', 'reference']);

/** Throws, naming the placeholder, on one that is neither a field nor a set env.NAME. */
export function checkTemplate(template: Json, env: NodeJS.ProcessEnv, registryHost: string | undefined): void {
  for (const name of placeholders(template)) {
    if (HOST_FIELDS.has(name) && registryHost === undefined) {
      throw new Error(`the template uses {{${name}}}: give --registry-host (the host:port clients pull from)`);
    }
    if (name.startsWith('env.')) {
      if (env[name.slice(4)] === undefined) throw new Error(`the template uses {{${name}}} but ${name.slice(4)} is not set in the environment`);
    } else if (!FIELD_NAMES.has(name)) {
      throw new Error(`the template uses {{${name}}}, which is not one of: ${[...FIELD_NAMES].join(', ')}, env.<NAME>`);
    }
  }
}

function placeholders(value: Json): string[] {
  if (typeof value === 'string') return [...value.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
  if (Array.isArray(value)) return value.flatMap(placeholders);
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [...placeholders(k), ...placeholders(v)]);
  return [];
}

/** The template with every placeholder replaced (inside strings, so the result stays valid JSON). */
export function renderTemplate(template: Json, fields: DeployFields, env: NodeJS.ProcessEnv): Json {
  const fill = (s: string) =>
    s.replace(PLACEHOLDER, (_, name: string) => (name.startsWith('env.') ? (env[name.slice(4)] ?? '') : String(fields[name as keyof DeployFields] ?? '')));
  const walk = (value: Json): Json => {
    if (typeof value === 'string') return fill(value);
    if (Array.isArray(value)) return value.map(walk);
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [fill(k), walk(v)]));
    return value;
  };
  return walk(template);
}

export function parseTemplate(text: string): Json {
  return JSON.parse(text) as Json;
}

/**
 * The tags of an event to forward, in order: manifest.pushed carries all of its tags, tag.moved one.
 * Patterns are Berth's tag patterns (a glob, or /regex/), as in the endpoint's `tags` filter.
 */
export function tagsToForward(event: BerthCloudEvent, patterns: readonly string[]): string[] {
  const target = event.data.target;
  const tags = event.type === 'io.berth.tag.moved' ? [target?.tag] : (target?.tags ?? []);
  return tags.filter((t): t is string => typeof t === 'string' && (patterns.length === 0 || firstMatch(patterns, t) !== undefined));
}

/**
 * The change an event came from. Berth numbers the events of one change `<change id>.<n>`: a push that
 * moves a tag gives a manifest.pushed and a tag.moved for the same tag, which is one deploy, not two.
 */
export function changeId(eventId: string): string {
  return eventId.replace(/\.\d+$/, '');
}

/** Throws with the reason when a tag pattern is a /regex/ that does not compile. */
export function checkTagPattern(pattern: string): void {
  tagPatternRegExp(pattern);
}

export function deployFields(event: BerthCloudEvent, tag: string, registryHost: string | undefined): DeployFields {
  const repository = event.data.repository ?? '';
  const digest = event.data.target?.digest ?? '';
  return {
    action: event.data.action ?? '',
    eventId: event.id,
    eventType: event.type,
    repository,
    tag,
    digest,
    mediaType: event.data.target?.mediaType ?? '',
    image: `${registryHost}/${repository}:${tag}`,
    reference: `${registryHost}/${repository}@${digest}`,
    previousDigest: event.data.target?.previousDigest ?? '',
    actor: event.data.actor?.name ?? '',
    time: event.time ?? '',
  };
}
