import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import {
  BlobNotFoundError,
  BlobTooLargeError,
  InvalidKeyError,
  InvalidOffsetError,
  StorageFullError,
  StorageUnavailableError,
} from '../storage-drivers/blob/types.js';
import { MetadataUnavailableError } from '../storage-drivers/metadata/types.js';
import { TokenError } from '../auth/token-errors.js';
import { errorBody, OciError, type ErrorCode } from '../errors/oci-error.js';
import { UploadBusyError, UploadRangeError, UploadStalledError } from './registry/uploads.js';
import { uploadRange } from './routes/http.js';
import { REPO_PREFIX } from './routes/url-rewrite.js';

export { ERROR_CODES, errorBody, OciError, type ErrorCode } from '../errors/oci-error.js';

/**
 * Out of space (a full disk or quota under blob storage or the embedded metadata store): 507
 * Insufficient Storage. The spec has no code for it; UNAVAILABLE is the nearest: the registry, not
 * the request, is at fault and the same push succeeds once space is freed. DENIED would send people
 * looking at their credentials. No Retry-After: retrying in a second will not help, an operator must act.
 */
export class StorageFullOciError extends OciError {
  override readonly status = 507;
  constructor(what: string) {
    super('UNAVAILABLE', `${what}: the push was not stored; free space there (or grow the volume), then push again`);
  }
}

/** Maps anything thrown while handling a request to the spec's error body; never leaks a stack. */
export function toOciError(err: unknown): OciError {
  if (err instanceof OciError) return err;
  if (err instanceof UploadRangeError) return new OciError('RANGE_INVALID', err.message, undefined, { Range: uploadRange(err.offset) });
  // Busy stays 416 RANGE_INVALID, not 409 or 429: the spec tells a client that gets 416 on a chunk to
  // GET the upload's offset and resume from there, which is just what a client beaten by a concurrent
  // request must do; a code the spec's clients do not act on would end their push instead.
  if (err instanceof UploadBusyError) return new OciError('RANGE_INVALID', err.message, undefined, { Range: uploadRange(err.offset) });
  // The connection may still hold the rest of the stalled body: close it, so nothing reads it as a request.
  if (err instanceof UploadStalledError) return new OciError('REQUEST_TIMEOUT', err.message, undefined, { Connection: 'close' });
  if (err instanceof TokenError) return tokenOciError(err);
  if (err instanceof StorageFullError) return new StorageFullOciError(err.message);
  if (err instanceof StorageUnavailableError || err instanceof MetadataUnavailableError) {
    return new OciError('UNAVAILABLE', 'storage backend unavailable, try again later', undefined, { 'Retry-After': '1' });
  }
  if (err instanceof BlobNotFoundError) return new OciError('BLOB_UNKNOWN');
  if (err instanceof BlobTooLargeError) return new OciError('SIZE_INVALID', `the blob is larger than the storage backend can hold: ${err.message}`);
  if (err instanceof InvalidKeyError) return new OciError('NAME_INVALID', 'invalid name or reference');
  if (err instanceof InvalidOffsetError) return new OciError('RANGE_INVALID', 'requested range not satisfiable');
  const fe = err as Partial<FastifyError> | undefined;
  if (fe && typeof fe === 'object' && typeof fe.statusCode === 'number') {
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new OciError('MANIFEST_TOO_LARGE', 'request body too large');
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new OciError('REQUEST_INVALID', 'unsupported Content-Type');
    if (fe.statusCode === 413) return new OciError('MANIFEST_TOO_LARGE', 'request body too large');
    if (fe.statusCode === 404) return new OciError('NOT_FOUND');
    if (fe.statusCode >= 400 && fe.statusCode < 500) return new OciError('REQUEST_INVALID', fe.message ?? 'request invalid');
  }
  return new OciError('UNKNOWN', 'internal error');
}

export function sendError(reply: FastifyReply, err: OciError): FastifyReply {
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  return reply
    .code(err.status)
    .type('application/json')
    .send(errorBody(err.code, err.message, err.detail));
}

/** The token endpoint's refusals in the Docker GET flow's shape (OAuth2 grants are answered by `sendTokenError`). */
function tokenOciError(err: TokenError): OciError {
  const failure = err.failure;
  switch (failure.kind) {
    case 'unknown_service':
      return new OciError('REQUEST_INVALID', err.message);
    case 'malformed_basic':
      return new OciError('UNAUTHORIZED', err.message);
    case 'bad_credentials':
      return new OciError('UNAUTHORIZED', err.message, undefined, { 'WWW-Authenticate': `Basic realm=${JSON.stringify(failure.realm)}` });
    case 'throttled':
      return new OciError('TOOMANYREQUESTS', err.message, undefined, { 'Retry-After': String(failure.retryAfterSeconds) });
    case 'oauth':
      // Only through toOciError: errorHandler answers these in RFC 6749's shape.
      return new OciError('REQUEST_INVALID', err.message);
  }
}

/** A token refusal is about this request only: no cache may keep it. OAuth2 grants get RFC 6749 §5.2's body. */
function sendTokenError(reply: FastifyReply, err: TokenError): FastifyReply {
  reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache');
  if (err.failure.kind === 'oauth') return reply.code(400).type('application/json').send({ error: err.failure.error, error_description: err.message });
  return sendError(reply, tokenOciError(err));
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof TokenError) {
    request.log.debug({ reason: err.failure.kind }, err.message);
    return sendTokenError(reply, err);
  }
  const oci = toOciError(err);
  // A body torn down half-read (a chunk that failed to store) leaves the connection unusable: say so,
  // or the client's next request on it fails with ECONNRESET instead of being sent on a new one.
  if (request.raw.destroyed && !request.raw.complete) reply.header('Connection', 'close');
  if (oci.status >= 500) request.log.error({ err }, 'request failed');
  else request.log.debug({ code: oci.code }, oci.message);
  return sendError(reply, oci);
}

/**
 * Errors the router raises before any route runs (Fastify's `frameworkErrors`): a path segment with
 * broken percent-encoding or longer than the router's parameter limit. The code names the segment
 * at fault, as the route would have.
 */
export function routingError(err: Partial<FastifyError>, url: string, method = 'GET'): OciError {
  const problem = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'is too long' : 'has malformed percent-encoding';
  const path = url.split('?')[0] ?? '';
  if (!path.startsWith(REPO_PREFIX)) return new OciError('NAME_INVALID', `the URL ${problem}`);
  const [name = '', kind, ...rest] = path.slice(REPO_PREFIX.length).split('/');
  let nameOk = name.length <= 1024;
  try {
    decodeURIComponent(decodeURIComponent(name));
  } catch {
    nameOk = false;
  }
  if (!nameOk) return new OciError('NAME_INVALID', `the repository name in the URL ${problem}`);
  if (kind === 'manifests') {
    // As for any reference that is not a tag or digest: a read finds nothing, a write is refused.
    const reads = method === 'GET' || method === 'HEAD';
    return new OciError(
      reads ? 'MANIFEST_UNKNOWN' : 'TAG_INVALID',
      `the manifest reference in the URL ${problem}: use a tag of at most 128 characters or a digest`,
    );
  }
  if (kind === 'blobs' && rest[0] === 'uploads')
    return new OciError('BLOB_UPLOAD_UNKNOWN', `the upload id in the URL ${problem}: use the Location returned by POST /v2/<name>/blobs/uploads/`);
  if (kind === 'blobs' || kind === 'referrers') return new OciError('DIGEST_INVALID', `the digest in the URL ${problem}: expected algorithm:hex`);
  return new OciError('NAME_INVALID', `the URL ${problem}`);
}

/** For Fastify's `frameworkErrors` option: router errors get the spec's JSON body like every other. */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  reply.header('Docker-Distribution-API-Version', 'registry/2.0');
  return sendError(reply, routingError(err, request.url, request.method));
}

/**
 * For Fastify's `clientErrorHandler` option: requests Node's HTTP parser refuses (bytes outside ASCII
 * in the URL, a Content-Length past 2^64, garbage after a body) still get a JSON error body.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const answer = clientErrorAnswer(err.code);
  const body = JSON.stringify(errorBody(answer.code, answer.message));
  socket.end(
    `HTTP/1.1 ${answer.status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nDocker-Distribution-API-Version: registry/2.0\r\nConnection: close\r\n\r\n${body}`,
  );
}

function clientErrorAnswer(code: string | undefined): { status: string; code: ErrorCode; message: string } {
  if (code === 'HPE_HEADER_OVERFLOW') return { status: '431 Request Header Fields Too Large', code: 'REQUEST_INVALID', message: 'request headers too large' };
  // Node's headersTimeout: the request line and headers did not arrive in time (a slow client).
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return { status: '408 Request Timeout', code: 'REQUEST_TIMEOUT', message: 'the request headers did not arrive in time' };
  return {
    status: '400 Bad Request',
    code: 'REQUEST_INVALID',
    message: `malformed HTTP request (${code ?? 'parse error'}): check the request line, headers and Content-Length`,
  };
}
