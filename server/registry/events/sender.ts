import http from 'node:http';
import https from 'node:https';
import { berthVersion } from '../../operations/version.js';
import { SIGNATURE_HEADER, sign } from './signature.js';

/*
 * One HTTP attempt to deliver one event, and what it means for the retry loop. The loop decides when
 * to try again; this only says whether trying again can help. Redirects are not followed: a signed
 * body re-posted somewhere else is a surprise to the operator, and an endpoint that moved should be
 * reconfigured, so a 3xx is a permanent failure that names the new location.
 */

export interface PostEventRequest {
  url: string;
  body: Buffer;
  contentType: string;
  /** Sent as given (see deliveryHeaders); Content-Type and Content-Length are set here. */
  headers?: Readonly<Record<string, string>> | undefined;
  /** The whole exchange: connecting, sending and reading the response. */
  timeoutMs: number;
  /** Aborts the attempt (process shutting down, lease lost); the outcome is retryable. */
  signal?: AbortSignal | undefined;
  /** An agent kept per endpoint (see endpointAgent), so connections are reused between events. */
  agent?: http.Agent | undefined;
  /** For Retry-After given as a date; default Date.now. */
  now?: (() => number) | undefined;
}

export interface PostOutcome {
  /** The endpoint took the event (2xx). */
  ok: boolean;
  status?: number;
  /** Trying again later may succeed (408, 425, 429, 5xx, no connection, no answer in time). */
  retryable: boolean;
  /** What went wrong, for the endpoint's status and dead letters: says what to check. */
  error?: string;
  /** The endpoint asked to wait this long (Retry-After). */
  retryAfterMs?: number;
}

/** Response bodies are read (so the connection can be reused) up to this much, then the connection is dropped. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** How much of a refusal's body goes into the error message. */
const SNIPPET_CHARS = 200;

const RETRYABLE_STATUS = new Set([408, 425, 429]);

/** A keep-alive agent for one endpoint; `ca` replaces the default trust store for https URLs. */
export function endpointAgent(url: string, options: { ca?: string | Buffer | undefined; maxSockets?: number } = {}): http.Agent {
  const common = { keepAlive: true, maxSockets: options.maxSockets ?? 8, scheduling: 'lifo' as const };
  if (new URL(url).protocol === 'https:') return new https.Agent(options.ca === undefined ? common : { ...common, ca: options.ca });
  return new http.Agent(common);
}

/**
 * The headers of one delivery attempt. Static headers from the config come first so nothing there can
 * replace the ones receivers rely on (the config refuses such names anyway).
 */
export function deliveryHeaders(input: {
  eventId: string;
  attempt: number;
  body: Buffer;
  secrets?: readonly string[] | undefined;
  staticHeaders?: Readonly<Record<string, string>> | undefined;
  nowSeconds: number;
}): Record<string, string> {
  const headers: Record<string, string> = { ...input.staticHeaders };
  headers['User-Agent'] = `Berth/${berthVersion()}`;
  headers['Berth-Event-Id'] = input.eventId;
  headers['Berth-Delivery-Attempt'] = String(input.attempt);
  if (input.secrets && input.secrets.length > 0) headers[SIGNATURE_HEADER] = sign(input.secrets, input.body, input.nowSeconds);
  return headers;
}

/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date starts with the day's name; Date.parse alone would take "-5" for a year.
  if (!/^[A-Za-z]{3}/.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

function describeStatus(status: number, statusText: string | undefined): string {
  return statusText ? `${status} ${statusText}` : String(status);
}

function snippet(body: Buffer): string {
  const text = body.toString('utf8').replace(/\s+/g, ' ').trim();
  if (text === '') return '';
  return `: ${text.length > SNIPPET_CHARS ? `${text.slice(0, SNIPPET_CHARS)}…` : text}`;
}

function judgeResponse(status: number, statusText: string | undefined, headers: http.IncomingHttpHeaders, body: Buffer, now: number): PostOutcome {
  if (status >= 200 && status < 300) return { ok: true, status, retryable: false };
  const outcome: PostOutcome = { ok: false, status, retryable: false };
  const retryAfter = parseRetryAfter(headers['retry-after'], now);
  if (retryAfter !== undefined) outcome.retryAfterMs = retryAfter;
  const said = describeStatus(status, statusText);
  if (status >= 300 && status < 400) {
    const location = headers.location;
    outcome.error = `endpoint answered ${said}${location ? ` to ${location}` : ''}: redirects are not followed, configure the URL it points to`;
  } else if (RETRYABLE_STATUS.has(status) || status >= 500) {
    outcome.retryable = true;
    outcome.error = `endpoint answered ${said}${snippet(body)}`;
  } else {
    outcome.error = `endpoint refused the event with ${said}${snippet(body)} (not retried: check the URL, the receiver's authentication and the format it expects)`;
  }
  return outcome;
}

const CONNECTION_HINTS: Record<string, string> = {
  ECONNREFUSED: 'connection refused: is the receiver running and listening on that port?',
  ENOTFOUND: 'host not found (DNS)',
  EAI_AGAIN: 'host name lookup failed for now (DNS)',
  ECONNRESET: 'the connection was reset before a response came',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'the connection closed while the body was sent',
  DEPTH_ZERO_SELF_SIGNED_CERT: "the endpoint's certificate is self-signed: give its CA as caFile",
  SELF_SIGNED_CERT_IN_CHAIN: "the endpoint's certificate chain is self-signed: give its CA as caFile",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the endpoint's certificate is not trusted: give its CA as caFile",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the endpoint's certificate is not trusted: give its CA as caFile",
  CERT_HAS_EXPIRED: "the endpoint's certificate has expired",
  ERR_TLS_CERT_ALTNAME_INVALID: "the endpoint's certificate does not name this host",
};

function describeError(err: NodeJS.ErrnoException, target: URL): string {
  const code = err.code ?? '';
  const hint = CONNECTION_HINTS[code];
  return `cannot deliver to ${target.host}: ${hint ?? err.message}${code && hint ? ` (${code})` : ''}`;
}

class AttemptTimeout extends Error {}

/** Posts one event body. Never throws: every failure is an outcome. */
export function postEvent(request: PostEventRequest): Promise<PostOutcome> {
  let target: URL;
  try {
    target = new URL(request.url);
  } catch {
    return Promise.resolve({ ok: false, retryable: false, error: `not a URL: ${JSON.stringify(request.url)}` });
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    return Promise.resolve({ ok: false, retryable: false, error: `only http and https URLs are delivered to, not ${target.protocol}` });
  }
  if (request.signal?.aborted) return Promise.resolve({ ok: false, retryable: true, error: 'delivery cancelled before it started' });
  const now = request.now ?? Date.now;
  const transport = target.protocol === 'https:' ? https : http;

  return new Promise<PostOutcome>((resolve) => {
    let settled = false;
    const finish = (outcome: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    let req: http.ClientRequest;
    const onAbort = () => {
      req.destroy();
      finish({ ok: false, retryable: true, error: 'delivery cancelled (the process is stopping or lost the endpoint)' });
    };
    const timer = setTimeout(() => {
      req.destroy(new AttemptTimeout());
      finish({ ok: false, retryable: true, error: `no response from ${target.host} within ${request.timeoutMs} ms (timeoutSeconds)` });
    }, request.timeoutMs);

    const headers: http.OutgoingHttpHeaders = {
      ...request.headers,
      'Content-Type': request.contentType,
      'Content-Length': request.body.length,
    };
    try {
      req = transport.request(target, { method: 'POST', headers, agent: request.agent });
    } catch (err) {
      // Bad header names or values: the config let something through that node will not send.
      clearTimeout(timer);
      resolve({ ok: false, retryable: false, error: `cannot build the request: ${(err as Error).message}` });
      return;
    }
    request.signal?.addEventListener('abort', onAbort, { once: true });

    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (chunk: Buffer) => {
        if (kept >= MAX_RESPONSE_BYTES) return;
        chunks.push(chunk);
        kept += chunk.length;
        // More than we care to read: a socket still carrying the rest cannot be reused anyway.
        if (kept >= MAX_RESPONSE_BYTES) {
          res.destroy();
          finish(judgeResponse(res.statusCode ?? 0, res.statusMessage, res.headers, Buffer.concat(chunks), now()));
        }
      });
      res.on('end', () => finish(judgeResponse(res.statusCode ?? 0, res.statusMessage, res.headers, Buffer.concat(chunks), now())));
      res.on('error', (err) => {
        if (!(err instanceof AttemptTimeout)) finish({ ok: false, status: res.statusCode ?? 0, retryable: true, error: describeError(err, target) });
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof AttemptTimeout) return;
      finish({ ok: false, retryable: true, error: describeError(err, target) });
    });
    req.end(request.body);
  });
}
