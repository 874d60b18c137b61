// HTTP/1.1 over a bare socket, so tests can send what fetch refuses to: lying Content-Length,
// `..` path segments, raw bytes in the request line, bodies cut short.
import { connect, type Socket } from 'node:net';

export interface RawRequest {
  method: string;
  /** Sent verbatim in the request line: no normalisation, no encoding. */
  path: string;
  headers?: Record<string, string> | undefined;
  body?: Buffer | string | undefined;
  /** Send `body` as one chunk of `Transfer-Encoding: chunked` instead of with a Content-Length. */
  chunked?: boolean | undefined;
  /** Half-close the socket after the body, even when Content-Length promised more. */
  endEarly?: boolean | undefined;
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

/** A response read off a kept-alive connection, with the interim (1xx) statuses that came before it. */
export interface ConnectionResponse extends RawResponse {
  interim: number[];
}

/**
 * One kept-alive HTTP/1.1 connection driven step by step: write a request's head, see what the server
 * answers before any body byte was sent, write the body (or not), then send the next request on the
 * same socket. `bodyBytesSent` counts what went out after the last head.
 */
export class RawConnection {
  private received = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private closedFlag = false;
  private failure: Error | undefined;
  bodyBytesSent = 0;

  private constructor(
    private readonly socket: Socket,
    private readonly host: string,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.waiter?.();
    });
    socket.on('error', (err) => {
      this.failure = err;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closedFlag = true;
      this.waiter?.();
    });
  }

  static open(base: string): Promise<RawConnection> {
    const url = new URL(base);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: url.hostname, port: Number(url.port) });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket, url.host));
      });
    });
  }

  /** True once the server closed the connection. */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** The request line and headers (Host added); the body, if any, is sent with `sendBody`. */
  sendHead(method: string, path: string, headers: Record<string, string>): Promise<void> {
    const lines = [`${method} ${path} HTTP/1.1`, `Host: ${this.host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    this.bodyBytesSent = 0;
    return this.write(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
  }

  async sendBody(data: Buffer): Promise<void> {
    await this.write(data);
    this.bodyBytesSent += data.length;
  }

  private write(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** The next final response; rejects when the connection closes first or nothing comes within `timeoutMs`. */
  async nextResponse(method = 'GET', timeoutMs = TIMEOUT_MS): Promise<ConnectionResponse> {
    const interim: number[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.received.indexOf('\r\n\r\n');
      const status = end === -1 ? NaN : Number(/^HTTP\/1\.[01] (\d{3})/.exec(this.received.subarray(0, end).toString('latin1'))?.[1]);
      if (status >= 100 && status < 200) {
        interim.push(status);
        this.received = this.received.subarray(end + 4);
        continue;
      }
      const parsed = parseResponse(this.received, method === 'HEAD', this.closedFlag);
      if (parsed) {
        const length = method === 'HEAD' ? 0 : parsed.body.length;
        this.received = this.received.subarray(end + 4 + length);
        return { ...parsed, interim };
      }
      if (this.closedFlag || this.failure)
        throw new Error(`connection ${this.failure ? `failed (${this.failure.message})` : 'closed'} before a response to ${method}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response to ${method} within ${timeoutMs} ms`);
      await this.wait(left);
    }
  }

  /** The next interim (1xx) status, e.g. 100 for `Expect: 100-continue`; rejects on a final response. */
  async nextInterim(timeoutMs = TIMEOUT_MS): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.received.indexOf('\r\n\r\n');
      if (end !== -1) {
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(this.received.subarray(0, end).toString('latin1'))?.[1]);
        if (!(status >= 100 && status < 200)) throw new Error(`expected an interim response, got ${status}`);
        this.received = this.received.subarray(end + 4);
        return status;
      }
      if (this.closedFlag || this.failure) throw new Error('connection closed before an interim response');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no interim response within ${timeoutMs} ms`);
      await this.wait(left);
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.waiter = () => {
        clearTimeout(timer);
        this.waiter = undefined;
        resolve();
      };
    });
  }

  /** Resolves when the server has closed the connection (after `timeoutMs`, rejects). */
  async waitClosed(timeoutMs = TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closedFlag) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`connection still open after ${timeoutMs} ms`);
      await this.wait(left);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
