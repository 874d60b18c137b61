import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { type Auth, type AuthContext, createAuth } from '../../auth/index.js';
import type { AuthConfigInput } from '../../auth/config.js';
import type { AccessNeed } from '../../auth/types.js';
import { errorHandler } from '../../server/errors.js';

export interface Harness {
  url: string;
  dir: string;
  auth: Auth;
  app: FastifyInstance;
  clock: { now: number };
  /** What the auth layer reported to its failure sink. */
  failures: Array<{ actor: string; reason: string }>;
  close(): Promise<void>;
}

/**
 * A small Fastify app with the token routes and two dummy routes standing in for the registry:
 * POST /check {needs} calls authorize, POST /allows {need} calls allows. GET /v2/ needs no scope.
 */
export async function startHarness(
  config: AuthConfigInput | ((dir: string) => AuthConfigInput),
  prepare?: (dir: string) => Promise<void>,
  /** Share a data directory between harnesses (like processes sharing a dataDir); the caller removes it. */
  shared?: { dir: string },
  /** More of createAuth's context, e.g. shared loginCounters. */
  ctx: Partial<AuthContext> = {},
): Promise<Harness> {
  const dir = shared?.dir ?? (await mkdtemp(join(tmpdir(), 'berth-auth-')));
  await prepare?.(dir);
  const clock = { now: Date.now() };
  const failures: Harness['failures'] = [];
  const auth = await createAuth(
    { enabled: true, ...(typeof config === 'function' ? config(dir) : config) },
    {
      dataDir: dir,
      now: () => clock.now,
      log: { info() {}, warn() {}, error() {} },
      onAuthFailure: (f) => failures.push({ actor: f.actor, reason: f.reason }),
      ...ctx,
    },
  );
  const app = Fastify({ logger: false });
  app.setErrorHandler(errorHandler);
  await app.register(auth.tokenRoutes);
  app.get('/v2/', async (request) => auth.authorizer.authorize(request, []));
  app.post('/check', async (request) => auth.authorizer.authorize(request, (request.body as { needs: AccessNeed[] }).needs));
  app.post('/allows', async (request) => ({ allowed: await auth.authorizer.allows(request, (request.body as { need: AccessNeed }).need) }));
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    dir,
    auth,
    app,
    clock,
    failures,
    async close() {
      await app.close();
      await auth.close();
      if (!shared) await rm(dir, { recursive: true, force: true });
    },
  };
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
  scope?: string;
}

/** GET the token endpoint; `auth` is an Authorization header value. */
export async function getToken(
  h: Harness,
  scopes: string[],
  auth?: string,
  extra: Record<string, string> = {},
): Promise<{ status: number; body: TokenResponse; headers: Headers }> {
  const q = new URLSearchParams({ service: 'berth', ...extra });
  for (const s of scopes) q.append('scope', s);
  const res = await fetch(`${h.url}/auth/token?${q}`, { headers: auth ? { authorization: auth } : {} });
  return { status: res.status, body: (await res.json()) as TokenResponse, headers: res.headers };
}

export async function postToken(
  h: Harness,
  form: Record<string, string>,
): Promise<{ status: number; body: TokenResponse & { error?: string }; headers: Headers }> {
  const res = await fetch(`${h.url}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ service: 'berth', client_id: 'test', ...form }),
  });
  return { status: res.status, body: (await res.json()) as TokenResponse & { error?: string }, headers: res.headers };
}

export interface CheckResult {
  status: number;
  challenge: string | null;
  body: { errors?: Array<{ code: string; detail?: unknown }>; subject?: string; kind?: string };
}

/** Calls the dummy route that authorizes `needs` with the given bearer token. */
export async function check(h: Harness, needs: AccessNeed[], token?: string, rawAuth?: string): Promise<CheckResult> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (rawAuth !== undefined) headers.authorization = rawAuth;
  else if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${h.url}/check`, { method: 'POST', headers, body: JSON.stringify({ needs }) });
  return { status: res.status, challenge: res.headers.get('www-authenticate'), body: (await res.json()) as CheckResult['body'] };
}

export async function allows(h: Harness, need: AccessNeed, token?: string): Promise<boolean> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${h.url}/allows`, { method: 'POST', headers, body: JSON.stringify({ need }) });
  return ((await res.json()) as { allowed: boolean }).allowed;
}

export const pull = (name: string): AccessNeed => ({ type: 'repository', name, actions: ['pull'] });
export const push = (name: string): AccessNeed => ({ type: 'repository', name, actions: ['pull', 'push'] });

/** GET the token endpoint from a given loopback address (127.0.0.0/8 all reaches the server). */
export function tokenFrom(
  url: string,
  from: string,
  user: string,
  password: string,
): Promise<{ status: number; retryAfter: string | undefined; body: string }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/auth/token?service=berth',
        localAddress: from,
        agent: false,
        headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
