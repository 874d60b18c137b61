import { parseChallenge, type Session } from './session.js';

/** An error answer from Berth: its registry error code and the message meant for people. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Call {
  method?: 'GET' | 'POST' | 'DELETE';
  /** Scopes to ask a token for, e.g. repository:team/app:pull,delete; the challenge's scope is added on a 401. */
  scopes?: readonly string[];
  body?: unknown;
}

let session: Session;

export function useSession(s: Session): void {
  session = s;
}

async function send(path: string, call: Call, scopes: readonly string[]): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = await session.token(scopes);
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  if (call.body !== undefined) headers['Content-Type'] = 'application/json';
  return fetch(path, { method: call.method ?? 'GET', headers, ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }) });
}

/**
 * Calls the management API. A 401 naming a scope the token lacks is answered the way registry clients
 * do: a token for that scope, and the call once more.
 */
export async function api<T>(path: string, call: Call = {}): Promise<T> {
  let scopes = call.scopes ?? [];
  let res = await send(path, call, scopes);
  if (res.status === 401 && session.mode === 'token') {
    const challenge = parseChallenge(res.headers.get('WWW-Authenticate'));
    if (challenge.error === 'invalid_token') session.forgetTokens();
    if (challenge.scope !== undefined && !scopes.includes(challenge.scope)) scopes = [...scopes, ...challenge.scope.split(' ')];
    res = await send(path, call, scopes);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text === '' ? {} : JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'UNKNOWN', `Berth answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    const first = (body as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0];
    const code = first?.code ?? 'UNKNOWN';
    let message = first?.message ?? `Berth answered ${res.status}`;
    if (res.status === 401) message = session.signedIn ? `${message} (your session may have ended: sign in again)` : 'sign in to see this';
    throw new ApiError(res.status, code, message);
  }
  return body as T;
}

/** A repository's name inside a management API path: as-is, since the API takes names with '/'. */
export function repoPath(name: string, rest = ''): string {
  return `/api/v1/repositories/${name.split('/').map(encodeURIComponent).join('/')}${rest}`;
}
