// Reading AWS SDK errors without depending on its class hierarchy: S3-compatible stores disagree on
// error codes, so decisions use the HTTP status where the code is ambiguous.
import { StorageFullError, StorageUnavailableError } from './types.js';

interface SdkErrorShape {
  name?: unknown;
  Code?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $retryable?: unknown;
}

function shape(err: unknown): SdkErrorShape {
  return typeof err === 'object' && err !== null ? (err as SdkErrorShape) : {};
}

export function errorName(err: unknown): string {
  const e = shape(err);
  for (const candidate of [e.name, e.Code, e.code]) {
    if (typeof candidate === 'string' && candidate.length > 0) return candidate;
  }
  return 'Error';
}

export function httpStatus(err: unknown): number | undefined {
  const status = shape(err).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

export function errorMessage(err: unknown): string {
  const message = shape(err).message;
  return typeof message === 'string' && message.length > 0 ? message : String(err);
}

/** The object is missing (but not the bucket: a missing bucket is a misconfiguration, not a miss). */
export function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || httpStatus(err) === 404;
}

export function isInvalidRange(err: unknown): boolean {
  return errorName(err) === 'InvalidRange' || httpStatus(err) === 416;
}

export function isAbort(err: unknown): boolean {
  return errorName(err) === 'AbortError';
}

/** Calls a store may not implement (s3rver: AbortMultipartUpload, ListMultipartUploads, UploadPartCopy). */
export function isUnsupported(err: unknown): boolean {
  const name = errorName(err);
  const status = httpStatus(err);
  return name === 'NotImplemented' || name === 'MethodNotAllowed' || status === 501 || status === 405;
}

const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
]);

/** Worth another attempt: throttling, server errors, dropped connections. */
export function isRetryable(err: unknown): boolean {
  // A full store stays full for longer than any retry waits.
  if (isAbort(err) || isStorageFull(err)) return false;
  const status = httpStatus(err);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (shape(err).$retryable !== undefined) return true;
  if (RETRYABLE_NAMES.has(errorName(err))) return true;
  // Network failures carry a system error code (ECONNRESET, EAI_AGAIN, ...) and no HTTP status.
  const code = shape(err).code;
  return status === undefined && typeof code === 'string' && code.startsWith('E');
}

/**
 * S3 itself never fills up, but S3-compatible stores do: MinIO answers XMinioStorageFull when its
 * drives are full and XMinioAdminBucketQuotaExceeded past a bucket quota; others send 507.
 */
const FULL_NAMES = new Set(['XMinioStorageFull', 'XMinioAdminBucketQuotaExceeded', 'QuotaExceeded']);

export function isStorageFull(err: unknown): boolean {
  return FULL_NAMES.has(errorName(err)) || httpStatus(err) === 507;
}

/** Wraps a backend failure so the HTTP layer answers 503 (507 when the store is full) before sending anything. */
export function unavailable(operation: string, target: string, err: unknown): StorageUnavailableError | StorageFullError {
  const status = httpStatus(err);
  const detail = `${errorName(err)}${status === undefined ? '' : ` (HTTP ${status})`}: ${errorMessage(err)}`;
  if (isStorageFull(err)) return new StorageFullError(`S3 storage is out of space: ${operation} ${target} failed with ${detail}`, { cause: err });
  return new StorageUnavailableError(`S3 ${operation} ${target} failed: ${detail}`, { cause: err });
}
