/**
 * Why the token endpoint refused a request. The service throws these; server/errors.ts turns each
 * into a status, headers and body (the spec's error body for the Docker GET flow, RFC 6749's
 * `{error, error_description}` for the OAuth2 POST grants).
 */
export type TokenFailure =
  /** `service=` names another registry (GET flow). */
  | { kind: 'unknown_service' }
  /** An Authorization header that says Basic but does not decode to user:password. */
  | { kind: 'malformed_basic' }
  /** Wrong user name or password (GET flow); the client is challenged for Basic credentials again. */
  | { kind: 'bad_credentials'; realm: string }
  /** Too many login attempts, or too many passwords being checked at once. */
  | { kind: 'throttled'; retryAfterSeconds: number }
  /** An OAuth2 grant refused (POST). */
  | { kind: 'oauth'; error: 'invalid_request' | 'invalid_grant' | 'unsupported_grant_type' };

export class TokenError extends Error {
  constructor(
    readonly failure: TokenFailure,
    message: string,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}
