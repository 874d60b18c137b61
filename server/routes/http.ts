import type { FastifyReply, FastifyRequest } from 'fastify';
import { OciError, type ErrorCode } from '../../errors/oci-error.js';
import type { ChunkRange } from '../registry/uploads.js';

/** Largest number accepted in headers and query strings; beyond it arithmetic loses precision. */
const MAX_SAFE_DIGITS = 15;

export function parseCount(value: string, what: string): number {
  if (!new RegExp(`^\\d{1,${MAX_SAFE_DIGITS}}$`).test(value)) {
    throw new OciError('SIZE_INVALID', `${what} must be a whole number below 10^${MAX_SAFE_DIGITS}, got ${JSON.stringify(value.slice(0, 40))}`);
  }
  return Number(value);
}

export function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Content-Length, if the client sent one. */
export function contentLength(request: FastifyRequest): number | undefined {
  const v = header(request, 'content-length');
  return v === undefined ? undefined : parseCount(v, 'Content-Length');
}

/** A chunk's `Content-Range: <start>-<end>` (inclusive); `bytes ` prefixes are tolerated. */
/** The client asks GET <upload> for the current offset after a 416 here; the header alone cannot tell it. */
export function chunkRange(request: FastifyRequest): ChunkRange | undefined {
  const v = header(request, 'content-range');
  if (v === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/.exec(v.trim());
  if (!m) {
    throw new OciError('RANGE_INVALID', `Content-Range ${JSON.stringify(v.slice(0, 60))} is malformed: expected <start>-<end>`);
  }
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new OciError('RANGE_INVALID', `Content-Range ${v} ends before it starts`);
  return { start, end };
}

/**
 * A GET's `Range: bytes=a-b | a- | -n` against an object of `size` bytes. Returns undefined for a
 * whole-object read; throws RANGE_INVALID (416) when unsatisfiable or malformed.
 */
export function byteRange(request: FastifyRequest, size: number): { start: number; end: number } | undefined {
  const v = header(request, 'range');
  if (v === undefined) return undefined;
  const unsatisfiable = () =>
    new OciError('RANGE_INVALID', `Range ${JSON.stringify(v.slice(0, 60))} cannot be satisfied for ${size} bytes`, undefined, {
      'Content-Range': `bytes */${size}`,
    });
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(v.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw unsatisfiable();
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw unsatisfiable();
    start = Math.max(size - suffix, 0);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || end < start) throw unsatisfiable();
  return { start, end };
}

/** A single query parameter; repeated ones are refused unless `many` is used. */
export function queryParam(request: FastifyRequest, name: string, code: ErrorCode = 'REQUEST_INVALID'): string | undefined {
  const q = request.query as Record<string, string | string[] | undefined>;
  const v = q[name];
  if (Array.isArray(v)) throw new OciError(code, `query parameter ${name} given more than once; give it once`);
  return v;
}

export function queryParams(request: FastifyRequest, name: string): string[] {
  const q = request.query as Record<string, string | string[] | undefined>;
  const v = q[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** `n` and `last` of the paginated lists. */
export function pageParams(request: FastifyRequest, max: number, fallback: number | undefined): { n: number | undefined; last: string | undefined } {
  const nRaw = queryParam(request, 'n', 'PAGINATION_NUMBER_INVALID');
  let n = fallback;
  if (nRaw !== undefined) {
    if (!/^\d{1,15}$/.test(nRaw))
      throw new OciError('PAGINATION_NUMBER_INVALID', `n must be a whole number from 0 to ${max}, got ${JSON.stringify(nRaw.slice(0, 40))}`);
    n = Number(nRaw);
    if (n > max) throw new OciError('PAGINATION_NUMBER_INVALID', `n must be at most ${max}, got ${n}`);
  }
  return { n, last: queryParam(request, 'last') };
}

/** RFC 5988 `Link` to the next page. */
export function setNextLink(reply: FastifyReply, path: string, n: number, last: string): void {
  reply.header('Link', `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`);
}

/** An upload's `Range: 0-<last>` header for `offset` bytes received. */
export function uploadRange(offset: number): string {
  return `0-${Math.max(offset - 1, 0)}`;
}

export function repoPath(name: string): string {
  return `/v2/${name}`;
}

/** True when the request's If-None-Match names the content's ETag (`"<digest>"`), so 304 will do. */
export function notModified(request: FastifyRequest, digest: string): boolean {
  const inm = header(request, 'if-none-match');
  return inm !== undefined && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === `"${digest}"`);
}
