// Signing in the way registry clients do (the Docker token flow): the /v2/ challenge names the token
// endpoint; a password login gets a refresh token (kept in sessionStorage, so it ends with the tab),
// and each scope set gets its own short-lived access token from it, as docker asks per repository.

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

interface Grant {
  token: string;
  expiresAt: number;
  access: Access[];
}

export type Mode = 'open' | 'token';

/** The registry-wide pages the UI asks for at sign-in; the token service grants what the rules allow. */
export const REGISTRY_SCOPES = ['catalog', 'gc', 'retention', 'quotas', 'events', 'replication', 'stats'].map((name) => `registry:${name}:*`);

const STORE_REFRESH = 'berth.refresh';
const STORE_USER = 'berth.user';

export class SignInError extends Error {}

function decodeAccess(jwt: string): Access[] {
  const part = jwt.split('.')[1];
  if (!part) return [];
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/')) as string;
    const claims = JSON.parse(json) as { access?: unknown };
    return Array.isArray(claims.access) ? (claims.access as Access[]) : [];
  } catch {
    return [];
  }
}

/** `Bearer realm="…",service="…",scope="…"` → its parameters. */
export function parseChallenge(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const m of header.matchAll(/(\w+)="([^"]*)"/g)) out[m[1] as string] = m[2] as string;
  return out;
}

export class Session {
  user: string | undefined;
  private readonly grants = new Map<string, Grant>();

  private constructor(
    readonly mode: Mode,
    readonly realm: string,
    readonly service: string,
  ) {
    this.user = sessionStorage.getItem(STORE_USER) ?? undefined;
  }

  /** Asks /v2/ whether auth is on and where tokens come from. */
  static async discover(): Promise<Session> {
    const res = await fetch('/v2/', { headers: { Accept: 'application/json' } });
    if (res.status !== 401) return new Session('open', '', '');
    const c = parseChallenge(res.headers.get('WWW-Authenticate'));
    return new Session('token', c.realm ?? '/auth/token', c.service ?? '');
  }

  get signedIn(): boolean {
    return this.mode === 'open' || sessionStorage.getItem(STORE_REFRESH) !== null;
  }

  async signIn(username: string, password: string): Promise<void> {
    const form = new URLSearchParams({
      grant_type: 'password',
      username,
      password,
      service: this.service,
      client_id: 'berth-ui',
      access_type: 'offline',
      scope: REGISTRY_SCOPES.join(' '),
    });
    const body = await this.post(form);
    if (typeof body.refresh_token !== 'string') throw new SignInError('the token service gave no refresh token');
    sessionStorage.setItem(STORE_REFRESH, body.refresh_token);
    sessionStorage.setItem(STORE_USER, username);
    this.user = username;
    this.grants.clear();
    this.remember(REGISTRY_SCOPES, body);
  }

  signOut(): void {
    sessionStorage.removeItem(STORE_REFRESH);
    sessionStorage.removeItem(STORE_USER);
    this.user = undefined;
    this.grants.clear();
  }

  /** Forgets cached access tokens (one was refused as expired or revoked). */
  forgetTokens(): void {
    this.grants.clear();
  }

  /** An access token for the scopes (undefined with auth off); anonymous when not signed in. */
  async token(scopes: readonly string[]): Promise<string | undefined> {
    if (this.mode === 'open') return undefined;
    const key = [...scopes].sort().join(' ');
    const cached = this.grants.get(key);
    if (cached && cached.expiresAt > Date.now() + 10_000) return cached.token;
    const refresh = sessionStorage.getItem(STORE_REFRESH);
    let body: Record<string, unknown>;
    if (refresh !== null) {
      try {
        body = await this.post(
          new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh, service: this.service, client_id: 'berth-ui', scope: key }),
        );
      } catch (err) {
        // The refresh token expired or was revoked (password changed, user removed): sign in again.
        this.signOut();
        throw err;
      }
    } else {
      const query = new URLSearchParams({ service: this.service });
      for (const s of scopes) query.append('scope', s);
      const res = await fetch(`${this.realm}?${query.toString()}`);
      if (!res.ok) throw new SignInError(`the token service answered ${res.status}`);
      body = (await res.json()) as Record<string, unknown>;
    }
    return this.remember(scopes, body).token;
  }

  /** What the cached tokens grant on a resource: the UI offers only actions a token carries. */
  allowed(type: string, name: string, action: string): boolean {
    if (this.mode === 'open') return true;
    for (const grant of this.grants.values()) {
      for (const a of grant.access) {
        if (a.type === type && a.name === name && (a.actions.includes(action) || a.actions.includes('*'))) return true;
      }
    }
    return false;
  }

  private remember(scopes: readonly string[], body: Record<string, unknown>): Grant {
    const token = typeof body.access_token === 'string' ? body.access_token : typeof body.token === 'string' ? body.token : '';
    if (token === '') throw new SignInError('the token service answered without a token');
    const ttl = typeof body.expires_in === 'number' ? body.expires_in : 60;
    const grant = { token, expiresAt: Date.now() + ttl * 1000, access: decodeAccess(token) };
    this.grants.set([...scopes].sort().join(' '), grant);
    return grant;
  }

  private async post(form: URLSearchParams): Promise<Record<string, unknown>> {
    const res = await fetch(this.realm, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      if (res.status === 429) throw new SignInError('too many sign-in attempts: wait a few minutes and try again');
      const detail = typeof body.error_description === 'string' ? body.error_description : `the token service answered ${res.status}`;
      throw new SignInError(res.status === 401 || body.error === 'invalid_grant' ? 'wrong user name or password' : detail);
    }
    return body;
  }
}
