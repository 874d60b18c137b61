/*
 * The spec's error codes and the error that carries one. A leaf: it imports nothing, so the auth
 * module and the storage drivers can throw OciErrors without depending on the HTTP server.
 * server/errors.ts maps every other typed cause onto these.
 */

/** Every error code Berth answers with, its HTTP status, and the spec's default message. */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  RANGE_INVALID: { status: 416, message: 'invalid content range' },
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  MANIFEST_TOO_LARGE: { status: 413, message: 'manifest too large' },
  REQUEST_INVALID: { status: 400, message: 'request invalid' },
  REQUEST_TIMEOUT: { status: 408, message: 'request timed out' },
  NOT_FOUND: { status: 404, message: 'not found' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error the client caused (or must be told about), rendered as the spec's JSON error body. */
export class OciError extends Error {
  readonly status: number;
  /** Extra response headers, e.g. WWW-Authenticate, Retry-After, Range. */
  readonly headers: Record<string, string>;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly detail?: unknown,
    headers: Record<string, string> = {},
  ) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'OciError';
    this.status = ERROR_CODES[code].status;
    this.headers = headers;
  }
}

export function errorBody(code: ErrorCode, message: string, detail?: unknown): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
  return { errors: [detail === undefined ? { code, message } : { code, message, detail }] };
}
