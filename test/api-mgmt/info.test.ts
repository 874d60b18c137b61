// GET /api/v1/info (docs/management-api.md): public, and tells a UI how to sign in and what is on,
// with auth off, with Berth's own token service and with an external one, and nothing secret.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { berthVersion } from '../../server/operations/version.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

async function info(url: string, headers: Record<string, string> = {}): Promise<{ text: string; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/api/v1/info`, { headers });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return { text, body: JSON.parse(text) as Record<string, unknown> };
}

describe('GET /api/v1/info', () => {
  it('with auth off: the version, auth off, and the features as configured', async () => {
    const reg = await startTestRegistry({
      config: {
        gc: { enabled: false },
        delete: { enabled: false },
        readOnly: true,
        stats: { enabled: false },
        retention: { enabled: true },
        quotas: { rules: [{ namespace: 'team', limitBytes: '1GiB' }] },
      },
    });
    try {
      const { body } = await info(reg.url);
      assert.notEqual(berthVersion(), 'unknown');
      assert.deepEqual(body, {
        version: berthVersion(),
        auth: { enabled: false },
        deleteEnabled: false,
        readOnly: true,
        features: { stats: false, events: true, gc: false, retention: true, replication: false, quotas: true, proxy: false },
      });
    } finally {
      await reg.close();
    }
  });

  describe('with auth on and the built-in token service', () => {
    let reg: TestRegistry;
    let auth: Auth;
    let work: string;
    const authConfig = { ...baseConfig, enabled: true, service: 'registry.test' };

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-api-info-'));
      await addUsers(work);
      process.env.BERTH_TEST_INFO_HOOK_SECRET = 'hook-signing-secret';
      auth = await createAuth(authConfig, { dataDir: work, log: { info() {}, warn() {}, error() {} } });
      reg = await startTestRegistry({
        config: {
          gc: { enabled: false },
          auth: authConfig,
          events: {
            deliver: false,
            endpoints: [{ name: 'audit-hook', url: 'https://hooks.internal.example/berth', secretEnv: 'BERTH_TEST_INFO_HOOK_SECRET' }],
          },
        },
        deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) },
      });
      // Something to leak, had the route a mind to: a repository pushed by a user.
      const token = await fetch(`${reg.url}/auth/token?service=registry.test&scope=repository:alice/private-thing:push,pull`, {
        headers: { authorization: `Basic ${Buffer.from(`alice:${PASSWORDS.alice}`).toString('base64')}` },
      });
      const { token: bearer } = (await token.json()) as { token: string };
      await new RegistryClient(reg.url, { authorization: `Bearer ${bearer}` }).pushImage('alice/private-thing', 'latest');
    });
    after(async () => {
      await reg?.close();
      await auth?.close();
      delete process.env.BERTH_TEST_INFO_HOOK_SECRET;
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('needs no credentials and names the token path and service, nothing more', async () => {
      const { body, text } = await info(reg.url);
      assert.deepEqual(body, {
        version: berthVersion(),
        auth: { enabled: true, tokenService: true, tokenPath: '/auth/token', service: 'registry.test' },
        deleteEnabled: true,
        readOnly: false,
        features: { stats: true, events: true, gc: false, retention: false, replication: false, quotas: false, proxy: false },
      });
      for (const secret of ['alice', 'bob', 'private-thing', 'audit-hook', 'hooks.internal', 'hook-signing-secret', ...Object.values(PASSWORDS)]) {
        assert.ok(!text.includes(secret), `${secret} in ${text}`);
      }
    });

    it('answers the same to a bad token as to none (it never looks at credentials)', async () => {
      const { body } = await info(reg.url, { authorization: 'Bearer not.a.token' });
      assert.deepEqual(body, (await info(reg.url)).body);
    });
  });

  it('with an external token server: no token path, the realm to send clients to', async () => {
    const reg = await startTestRegistry({
      config: {
        gc: { enabled: false },
        auth: {
          enabled: true,
          tokenService: false,
          service: 'registry.example.com',
          realm: 'https://auth.example.com/token',
          externalIssuers: [{ issuer: 'https://auth.example.com', jwksUrl: 'https://auth.example.com/jwks.json' }],
        },
      },
    });
    try {
      const { body } = await info(reg.url);
      assert.deepEqual(body.auth, { enabled: true, tokenService: false, service: 'registry.example.com', realm: 'https://auth.example.com/token' });
    } finally {
      await reg.close();
    }
  });
});
