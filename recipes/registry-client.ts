// Just enough of an OCI distribution client to attach a referrer: check and upload blobs, PUT a
// manifest by digest. Authenticates the way docker does: a request answered 401 with
// `WWW-Authenticate: Bearer realm=…,service=…` makes it fetch a token from the realm (with Basic
// credentials when it has them) for `repository:<name>:pull,push` and repeat the request once;
// a `Basic` challenge gets the credentials directly. A static bearer token is sent as it is.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export type RegistryCredentials =
  | { kind: 'none' }
  | { kind: 'basic'; username: string; password: string }
  /** Re-read on every request, so whatever renews the token can rewrite the file. */
  | { kind: 'bearer-file'; path: string };

export class RegistryError extends Error {}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const REQUEST_TIMEOUT_MS = 60_000;
const TOKEN_MARGIN_MS = 10_000;

export function sha256Digest(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** `Bearer realm="…",service="…",scope="…"` → its parameters (scheme lower-cased). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const match = /^\s*(\S+)\s*(.*)$/.exec(header);
  const params: Record<string, string> = {};
  if (!match) return { scheme: '', params };
  const re = /([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (let m = re.exec(match[2] ?? ''); m; m = re.exec(match[2] ?? '')) {
    params[(m[1] as string).toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
  }
  return { scheme: (match[1] as string).toLowerCase(), params };
}

export class OciClient {
  readonly #tokens = new Map<string, CachedToken>();
  /** The registry challenged with Basic once: send the credentials up front from then on. */
  #basicUpFront = false;

  constructor(
    readonly base: URL,
    readonly credentials: RegistryCredentials,
    readonly now: () => number = Date.now,
  ) {}

  /** host[:port] as image references name this registry. */
  get host(): string {
    return this.base.host;
  }

  async blobExists(repo: string, digest: string): Promise<boolean> {
    const res = await this.#send(repo, 'HEAD', `/v2/${repo}/blobs/${digest}`);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.#error(res, repo, `HEAD blob ${digest} in ${repo}`);
  }

  /** POST an upload session, then PUT the bytes with the digest: the flow every registry supports. */
  async pushBlob(repo: string, data: Buffer, digest = sha256Digest(data)): Promise<string> {
    if (await this.blobExists(repo, digest)) return digest;
    const started = await this.#send(repo, 'POST', `/v2/${repo}/blobs/uploads/`);
    if (started.status !== 202) throw await this.#error(started, repo, `start an upload in ${repo}`);
    await started.body?.cancel();
    const location = started.headers.get('location');
    if (!location) throw new RegistryError(`the registry started an upload in ${repo} without a Location header`);
    const url = new URL(location, this.base);
    url.searchParams.set('digest', digest);
    const done = await this.#send(repo, 'PUT', url, { body: data, headers: { 'content-type': 'application/octet-stream' } });
    if (done.status !== 201) throw await this.#error(done, repo, `upload blob ${digest} to ${repo}`);
    await done.body?.cancel();
    return digest;
  }

  /** PUT a manifest; subjectProcessed is false when the registry did not answer OCI-Subject (no referrers API). */
  async putManifest(repo: string, reference: string, mediaType: string, body: Buffer): Promise<{ digest: string; subjectProcessed: boolean }> {
    const res = await this.#send(repo, 'PUT', `/v2/${repo}/manifests/${reference}`, { body, headers: { 'content-type': mediaType } });
    if (res.status !== 201) throw await this.#error(res, repo, `PUT manifest ${reference} in ${repo}`);
    await res.body?.cancel();
    return { digest: res.headers.get('docker-content-digest') ?? sha256Digest(body), subjectProcessed: res.headers.has('oci-subject') };
  }

  async #send(repo: string, method: string, path: string | URL, init: { body?: Buffer; headers?: Record<string, string> } = {}): Promise<Response> {
    const url = typeof path === 'string' ? new URL(path, this.base) : path;
    const request = (authorization: string | undefined) =>
      fetch(url, {
        method,
        headers: { ...init.headers, ...(authorization ? { authorization } : {}) },
        ...(init.body ? { body: init.body } : {}),
        redirect: 'manual',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    const first = await request(this.#authorization(repo));
    if (first.status !== 401 || this.credentials.kind === 'bearer-file') return first;
    const challenge = first.headers.get('www-authenticate');
    await first.body?.cancel();
    if (!challenge) return first;
    const { scheme, params } = parseChallenge(challenge);
    if (scheme === 'basic') {
      if (this.credentials.kind !== 'basic') throw new RegistryError(`${this.host} wants a user name and password (--username, --password-file)`);
      this.#basicUpFront = true;
      return request(this.#basic());
    }
    if (scheme !== 'bearer' || !params.realm) throw new RegistryError(`${this.host} answered 401 with a challenge this client does not speak: ${challenge}`);
    const token = await this.#fetchToken(repo, params.realm, params.service);
    return request(`Bearer ${token}`);
  }

  #authorization(repo: string): string | undefined {
    if (this.credentials.kind === 'bearer-file') {
      let token: string;
      try {
        token = readFileSync(this.credentials.path, 'utf8').trim();
      } catch (err) {
        throw new RegistryError(`cannot read the token file ${this.credentials.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      return `Bearer ${token}`;
    }
    if (this.#basicUpFront) return this.#basic();
    const cached = this.#tokens.get(repo);
    if (cached && cached.expiresAt > this.now()) return `Bearer ${cached.token}`;
    return undefined;
  }

  #who(): string {
    if (this.credentials.kind === 'basic') return `as ${this.credentials.username}`;
    if (this.credentials.kind === 'bearer-file') return `with the token in ${this.credentials.path}`;
    return 'anonymously (no --username or --token-file given)';
  }

  #basic(): string {
    if (this.credentials.kind !== 'basic') throw new Error('no basic credentials');
    return `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
  }

  async #fetchToken(repo: string, realm: string, service: string | undefined): Promise<string> {
    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    url.searchParams.set('scope', `repository:${repo}:pull,push`);
    const res = await fetch(url, {
      headers: this.credentials.kind === 'basic' ? { authorization: this.#basic() } : {},
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (res.status !== 200) throw await this.#error(res, repo, `get a push token for ${repo} from ${url.origin}${url.pathname}`);
    const body = (await res.json()) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new RegistryError(`the token endpoint ${url.origin}${url.pathname} answered without a token`);
    const lifetime = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    this.#tokens.set(repo, { token, expiresAt: this.now() + Math.max(0, lifetime * 1000 - TOKEN_MARGIN_MS) });
    return token;
  }

  async #error(res: Response, repo: string, what: string): Promise<RegistryError> {
    const text = (await res.text().catch(() => '')).slice(0, 300);
    const hint = res.status === 401 || res.status === 403 ? `. The hook pushes ${this.#who()}; that needs pull and push on ${repo}` : '';
    return new RegistryError(`could not ${what}: ${res.status}${text ? ` ${text}` : ''}${hint}`);
  }
}
