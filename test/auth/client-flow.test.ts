import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openAccessWarning, isLoopbackHost } from '../../auth/warnings.js';
import { type Harness, basic, startHarness } from './harness.js';
import { PASSWORDS, addUsers, baseConfig } from './fixtures.js';

/** Parses `Bearer k="v",k="v"` the way registry clients do. */
function parseChallenge(header: string): Record<string, string> {
  assert.match(header, /^Bearer /);
  const out: Record<string, string> = {};
  for (const m of header.slice(7).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1] as string] = (m[2] as string).replace(/\\(.)/g, '$1');
  return out;
}

/**
 * What docker/containerd do: request, read the challenge, ask the realm for the named scopes
 * with Basic credentials (or none), retry with the token.
 */
async function clientRequest(h: Harness, path: string, init: RequestInit, creds?: [string, string]): Promise<Response> {
  const first = await fetch(`${h.url}${path}`, init);
  if (first.status !== 401) return first;
  await first.arrayBuffer();
  const c = parseChallenge(first.headers.get('www-authenticate') ?? '');
  const q = new URLSearchParams({ service: c.service ?? '' });
  for (const s of (c.scope ?? '').split(' ').filter(Boolean)) q.append('scope', s);
  const tokenRes = await fetch(`${c.realm}?${q}`, { headers: creds ? { authorization: basic(...creds) } : {} });
  assert.equal(tokenRes.status, 200);
  const { token } = (await tokenRes.json()) as { token: string };
  return fetch(`${h.url}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` } });
}

describe('auth: a registry client following the challenge', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ ...baseConfig, realm: undefined }, addUsers);
  });
  after(() => h.close());

  const body = (needs: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ needs }) });

  it('gets in with credentials and is refused without', async () => {
    const needs = [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }];
    const withCreds = await clientRequest(h, '/check', body(needs), ['alice', PASSWORDS.alice]);
    assert.equal(withCreds.status, 200);
    const anonymous = await clientRequest(h, '/check', body(needs));
    assert.equal(anonymous.status, 401);
    const ping = await clientRequest(h, '/v2/', {}, ['bob', PASSWORDS.bob]);
    assert.equal(ping.status, 200);
  });

  it('without publicUrl, derives the realm from the Host header (X-Forwarded-* only with trustProxy)', async () => {
    const res = await h.app.inject({
      method: 'GET',
      url: '/v2/',
      headers: { host: 'registry.test:5000', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    });
    assert.equal(parseChallenge(String(res.headers['www-authenticate'])).realm, 'http://registry.test:5000/auth/token');
  });

  it('accepts the OAuth2 form with a charset parameter and refuses malformed Basic', async () => {
    const res = await fetch(`${h.url}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: new URLSearchParams({
        grant_type: 'password',
        service: 'berth',
        client_id: 'x',
        username: 'alice',
        password: PASSWORDS.alice,
        scope: 'repository:team/a:pull',
      }),
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { scope: string }).scope, 'repository:team/a:pull');
    const bad = await fetch(`${h.url}/auth/token?service=berth`, { headers: { authorization: `Basic ${Buffer.from('nocolon').toString('base64')}` } });
    assert.equal(bad.status, 401);
  });
});

describe('auth: publicUrl sets the realm', () => {
  it('uses http.publicUrl when given', async () => {
    const { createAuth } = await import('../../auth/index.js');
    const Fastify = (await import('fastify')).default;
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'berth-auth-realm-'));
    const auth = await createAuth({ enabled: true }, { dataDir: dir, publicUrl: 'https://registry.example.com/', log: { info() {}, warn() {}, error() {} } });
    const { errorHandler } = await import('../../server/errors.js');
    const app = Fastify();
    app.setErrorHandler(errorHandler);
    app.get('/v2/', async (request) => auth.authorizer.authorize(request, []));
    try {
      const res = await app.inject({ method: 'GET', url: '/v2/' });
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="https://registry.example.com/auth/token",service="berth"');
    } finally {
      await app.close();
      await auth.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('auth: open-access warning', () => {
  it('warns only for auth off on a non-loopback address', () => {
    assert.ok(isLoopbackHost('127.0.0.1') && isLoopbackHost('::1') && isLoopbackHost('localhost') && isLoopbackHost('[::1]'));
    assert.ok(!isLoopbackHost('0.0.0.0') && !isLoopbackHost('::') && !isLoopbackHost('10.0.0.1'));
    assert.match(openAccessWarning('0.0.0.0', false) ?? '', /auth is OFF/);
    assert.equal(openAccessWarning('0.0.0.0', true), undefined);
    assert.equal(openAccessWarning('127.0.0.1', false), undefined);
  });
});
