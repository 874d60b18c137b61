/** Request/response headers that carry credentials or tokens; the logger must never print them. */
export const SENSITIVE_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'] as const;

/** Paths for pino's `redact` option covering SENSITIVE_HEADERS in serialized requests and responses. */
export const LOG_REDACT_PATHS: string[] = SENSITIVE_HEADERS.flatMap((h) => [`req.headers["${h}"]`, `res.headers["${h}"]`, `headers["${h}"]`]);
