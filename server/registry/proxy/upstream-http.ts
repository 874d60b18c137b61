import http from 'node:http';
import https from 'node:https';

/*
 * One HTTP request to an upstream (or wherever it redirects), on node:http. The timeout covers
 * connecting and the response headers; after that the same length bounds any silence in the body, so
 * a stalled upstream fails the read instead of holding a client forever.
 */

/** No answer in time, or no connection at all: the upstream (or this URL of it) is unavailable. */
export class TransportError extends Error {
  constructor(
    readonly kind: 'timeout' | 'unreachable',
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

export type SendMethod = 'GET' | 'HEAD' | 'PUT' | 'PATCH' | 'POST' | 'DELETE';

export interface SendOptions {
  method: SendMethod;
  headers: Record<string, string>;
  /** Sent whole with its Content-Length; the timeout for headers starts once it is written. */
  body?: Buffer | undefined;
  timeoutMs: number;
  agent: http.Agent;
  signal?: AbortSignal | undefined;
}

const CONNECTION_HINTS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found (DNS)',
  EAI_AGAIN: 'host name lookup failed for now (DNS)',
  ECONNRESET: 'the connection was reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed: give its CA as caFile',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain is self-signed: give its CA as caFile',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not trusted: give its CA as caFile',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is not trusted: give its CA as caFile',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate does not name this host',
};

function describe(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  const hint = CONNECTION_HINTS[code];
  return hint ? `${hint} (${code})` : err.message;
}

/** Keep-alive agents: one pair per upstream (its CA), one pair for the origins it redirects to. */
export function makeAgents(options: { ca?: string | undefined; maxSockets: number }): { http: http.Agent; https: https.Agent } {
  const common = { keepAlive: true, maxSockets: options.maxSockets, scheduling: 'lifo' as const };
  return { http: new http.Agent(common), https: new https.Agent(options.ca === undefined ? common : { ...common, ca: options.ca }) };
}

/**
 * Sends the request and resolves with the response once its headers arrive (any status). Rejects with
 * TransportError on no connection or no headers in time, or the signal's reason. The response errors
 * with TransportError when its body goes silent for timeoutMs, and is destroyed when the signal aborts.
 */
export function send(url: URL, options: SendOptions): Promise<http.IncomingMessage> {
  if (options.signal?.aborted) return Promise.reject(options.signal.reason);
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    let response: http.IncomingMessage | undefined;
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(headersTimer);
      options.signal?.removeEventListener('abort', onAbort);
      reject(err);
    };
    const onAbort = () => {
      const reason: unknown = options.signal?.reason;
      if (response) response.destroy(reason instanceof Error ? reason : new Error('aborted'));
      else req.destroy();
      fail(reason);
    };
    const headers = options.body === undefined ? options.headers : { ...options.headers, 'Content-Length': String(options.body.length) };
    const req = transport.request(url, { method: options.method, headers, agent: options.agent });
    let headersTimer: NodeJS.Timeout | undefined;
    const startHeadersTimer = () => {
      if (settled) return;
      headersTimer = setTimeout(() => {
        const err = new TransportError('timeout', `no response from ${url.host} within ${options.timeoutMs} ms (timeoutSeconds)`);
        req.destroy(err);
        fail(err);
      }, options.timeoutMs);
    };
    req.setTimeout(options.timeoutMs, () => {
      const err = new TransportError('timeout', `${url.host} sent nothing for ${options.timeoutMs} ms (timeoutSeconds)`);
      if (response) response.destroy(err);
      else req.destroy(err);
      fail(err);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      fail(err instanceof TransportError ? err : new TransportError('unreachable', `cannot reach ${url.host}: ${describe(err)}`));
    });
    req.on('response', (res) => {
      response = res;
      settled = true;
      clearTimeout(headersTimer);
      res.once('close', () => {
        options.signal?.removeEventListener('abort', onAbort);
        req.setTimeout(0);
      });
      resolve(res);
    });
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // A large body takes its own time to send (bounded by the idle timeout); the wait for an answer starts after it.
    if (options.body === undefined) {
      startHeadersTimer();
      req.end();
    } else req.end(options.body, startHeadersTimer);
  });
}

/** Thrown by readBody when the body is longer than its limit. */
export class BodyLimitError extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes`);
    this.name = 'BodyLimitError';
  }
}

/** Reads the whole body, failing (and dropping the connection) past `limit` bytes. */
export async function readBody(res: http.IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > limit) {
      res.destroy();
      throw new BodyLimitError(limit);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** What an error response said, for a message (at most a few hundred characters); never throws. */
export async function errorSnippet(res: http.IncomingMessage): Promise<string> {
  try {
    const body = await readBody(res, 16 * 1024);
    const text = body.toString('utf8').replace(/\s+/g, ' ').trim();
    if (text === '') return '';
    return `: ${text.length > 200 ? `${text.slice(0, 200)}…` : text}`;
  } catch {
    res.destroy();
    return '';
  }
}

/** Lets go of a response whose body does not matter (`head`: an answer to HEAD, which has none). */
export function discard(res: http.IncomingMessage, head = false): void {
  // A short body is drained so the keep-alive connection can be reused; a long one is not worth it.
  const length = Number(res.headers['content-length'] ?? 'NaN');
  if (head || (Number.isFinite(length) && length <= 64 * 1024)) res.resume();
  else res.destroy();
}
