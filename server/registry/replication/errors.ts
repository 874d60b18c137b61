/*
 * What went wrong talking to a replication endpoint. The copier needs one question answered: is it
 * worth trying again later (a 5xx, a 429, no connection, a timeout) or will the same request fail the
 * same way (refused, invalid, too large)? The message names the registry, the repository and the
 * operation, and quotes what the registry said, never a credential.
 */

export interface ReplicationErrorDetails {
  registry: string;
  repo: string | undefined;
  /** What was being done: `put blob sha256:…`, `list tags`, … */
  operation: string;
  /** The HTTP status, when there was an answer. */
  status?: number | undefined;
  /** What the registry said (its error body, shortened), or the transport failure. */
  said?: string | undefined;
  retryable: boolean;
  /** How long the registry asked to be left alone (Retry-After of a 429 or 503), when it said. */
  retryAfterMs?: number | undefined;
}

export class ReplicationError extends Error {
  readonly registry: string;
  readonly repo: string | undefined;
  readonly operation: string;
  readonly status: number | undefined;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(details: ReplicationErrorDetails) {
    const where = details.repo === undefined ? `registry ${details.registry}` : `registry ${details.registry}, ${details.repo}`;
    const what = details.status === undefined ? '' : ` answered ${details.status}`;
    const said = details.said === undefined || details.said === '' ? '' : `: ${details.said.replace(/^: /, '')}`;
    super(`${where}: ${details.operation}${what}${said}`);
    this.name = 'ReplicationError';
    this.registry = details.registry;
    this.repo = details.repo;
    this.operation = details.operation;
    this.status = details.status;
    this.retryable = details.retryable;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** 429 and 5xx are the registry's passing trouble; any other status will not change by asking again. */
export function retryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}
