// HTTP/1.1 over a bare socket, so tests can send what fetch refuses to: lying Content-Length,
// `..` path segments, raw bytes in the request line, bodies cut short.
import { connect } from 'node:net';

export interface RawRequest {
  method: string;
  /** Sent verbatim in the request line: no normalisation, no encoding. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send `body` as one chunk of `Transfer-Encoding: chunked` instead of with a Content-Length. */
  chunked?: boolean;
  /** Half-close the socket after the body, even when Content-Length promised more. */
  endEarly?: boolean;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const TIMEOUT_MS = 10_000;

/**
 * Sends one request on a fresh connection (Connection: close) and parses the first response.
 * Resolves undefined when the server closed the connection without answering.
 * A Content-Length in `headers` is sent as given; otherwise one matching the body is added.
 */
export function rawRequest(base: string, req: RawRequest): Promise<RawResponse | undefined> {
  const url = new URL(base);
  const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body);
  const lines = [`${req.method} ${req.path} HTTP/1.1`, `Host: ${url.host}`, 'Connection: close'];
  const given = Object.keys(req.headers ?? {}).map((k) => k.toLowerCase());
  for (const [k, v] of Object.entries(req.headers ?? {})) lines.push(`${k}: ${v}`);
  if (req.chunked) lines.push('Transfer-Encoding: chunked');
  else if (body !== undefined && !given.includes('content-length')) lines.push(`Content-Length: ${body.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  let payload: Buffer = body ?? Buffer.alloc(0);
  if (req.chunked) {
    payload = Buffer.concat([
      ...(payload.length > 0 ? [Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n')] : []),
      Buffer.from('0\r\n\r\n'),
    ]);
  }

  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (result: RawResponse | undefined, err?: Error) => {
      if (done) return;
      done = true;
      socket.destroy();
      if (err) reject(err);
      else resolve(result);
    };
    socket.setTimeout(TIMEOUT_MS, () => finish(undefined, new Error(`no response to ${req.method} ${req.path.slice(0, 100)} within ${TIMEOUT_MS} ms`)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const parsed = parseResponse(received, req.method === 'HEAD');
      if (parsed) finish(parsed);
    });
    // The server may answer (413, 400) and close before reading the whole body: writing then fails.
    socket.on('error', () => finish(parseResponse(received, req.method === 'HEAD', true)));
    socket.on('close', () => finish(parseResponse(received, req.method === 'HEAD', true)));
    socket.on('connect', () => {
      socket.write(head);
      socket.write(payload, () => {
        if (req.endEarly) socket.end();
      });
    });
  });
}

/** The first complete response in `data`, or undefined while more bytes are needed. */
function parseResponse(data: Buffer, isHead: boolean, closed = false): RawResponse | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine, ...headerLines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
  if (!Number.isInteger(status)) return undefined;
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = data.subarray(end + 4);
  if (isHead || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0) };
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    return rest.length >= length ? { status, headers, body: rest.subarray(0, length) } : undefined;
  }
  if (headers['transfer-encoding']?.includes('chunked')) {
    const parts: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', pos);
      if (eol === -1) return undefined;
      const size = parseInt(rest.subarray(pos, eol).toString('latin1'), 16);
      if (Number.isNaN(size)) return undefined;
      if (size === 0) return { status, headers, body: Buffer.concat(parts) };
      if (rest.length < eol + 2 + size + 2) return undefined;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      pos = eol + 2 + size + 2;
    }
  }
  return closed ? { status, headers, body: rest } : undefined;
}
