// What both recipe hooks share: reading one CloudEvent that Berth POSTs, checking its signature,
// answering, remembering event ids for de-duplication, and one JSON log line per thing worth telling.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SIGNATURE_HEADER, verifyBerthSignature } from './hook-signature.js';

/** Berth sends one event per request; bodies beyond this are not Berth's. */
export const MAX_EVENT_BYTES = 1024 * 1024;

/** The part of Berth's event data the recipes read (docs/events.md has the whole shape). */
export interface BerthEventTarget {
  digest?: string;
  mediaType?: string;
  size?: number;
  tag?: string;
  tags?: string[];
  artifactType?: string;
  subject?: unknown;
  previousDigest?: string;
}

export interface BerthEventData {
  action?: string;
  repository?: string;
  target?: BerthEventTarget;
  actor?: { name?: string; kind?: string };
}

/** A CloudEvents 1.0 event in structured mode, as Berth sends it. */
export interface BerthCloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  data: BerthEventData;
}

export function log(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
}

export function sendJson(res: ServerResponse, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(data.length), ...headers });
  res.end(data);
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Why a body is not a Berth CloudEvent, or the event. */
export function parseCloudEvent(body: Buffer): BerthCloudEvent | string {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'the body is not a JSON object';
  const e = doc as Record<string, unknown>;
  if (e.specversion !== '1.0') return 'not a CloudEvents 1.0 event (specversion)';
  for (const field of ['id', 'source', 'type'] as const) {
    if (typeof e[field] !== 'string' || e[field] === '') return `the event has no ${field}`;
  }
  if (typeof e.data !== 'object' || e.data === null || Array.isArray(e.data)) return 'the event has no data object';
  return e as unknown as BerthCloudEvent;
}

export interface ReceiveOptions {
  secrets: readonly string[];
  /** For tests and clock-skewed hosts; defaults to the wall clock. */
  nowSeconds?: () => number;
}

/**
 * Reads and checks one delivery. Answers the request itself and returns undefined when it is not a
 * correctly signed Berth CloudEvent: 401 for a bad or missing signature (nothing else is looked at),
 * 415 for another format, 400 for a body that is not an event, 405/413 as usual.
 */
export async function receiveEvent(req: IncomingMessage, res: ServerResponse, options: ReceiveOptions): Promise<BerthCloudEvent | undefined> {
  if (req.method !== 'POST') {
    sendJson(res, 405, { error: 'Berth delivers events with POST' }, { allow: 'POST' });
    return undefined;
  }
  const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (contentType !== 'application/cloudevents+json' && contentType !== 'application/json') {
    req.resume();
    sendJson(res, 415, { error: `expected application/cloudevents+json, got ${contentType || 'no Content-Type'}: set the endpoint's format to cloudevents` });
    return undefined;
  }
  let body: Buffer;
  try {
    body = await readBody(req, MAX_EVENT_BYTES);
  } catch (err) {
    if (err instanceof BodyTooLarge) sendJson(res, 413, { error: `an event body is at most ${MAX_EVENT_BYTES} bytes` });
    else res.destroy();
    return undefined;
  }
  const header = req.headers[SIGNATURE_HEADER];
  const check = verifyBerthSignature(
    Array.isArray(header) ? header.join(',') : header,
    body,
    options.secrets,
    options.nowSeconds ? { nowSeconds: options.nowSeconds() } : {},
  );
  if (!check.ok) {
    log({ level: 'warn', msg: 'event refused', reason: check.reason, eventId: req.headers['berth-event-id'], address: req.socket.remoteAddress });
    sendJson(res, 401, { error: check.reason });
    return undefined;
  }
  const event = parseCloudEvent(body);
  if (typeof event === 'string') {
    sendJson(res, 400, { error: event });
    return undefined;
  }
  return event;
}

/** Event ids seen lately, oldest forgotten first: Berth redelivers with the same id. */
export class RecentIds {
  readonly #ids = new Set<string>();
  constructor(readonly max = 10_000) {}

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  add(id: string): void {
    this.#ids.delete(id);
    this.#ids.add(id);
    if (this.#ids.size > this.max) {
      const oldest = this.#ids.values().next();
      if (!oldest.done) this.#ids.delete(oldest.value);
    }
  }

  delete(id: string): void {
    this.#ids.delete(id);
  }
}
