import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import type { BerthConfigInput } from '../../server/config.js';
import { addUsers, PASSWORDS } from '../auth/fixtures.js';
import { basic, getToken } from '../auth/harness.js';
import { OCI_MANIFEST, RegistryClient, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

/**
 * A proxy namespace on a registry with auth on: access is decided first (an anonymous push is
 * challenged with 401, as anywhere else), and only a caller allowed to push hears that the namespace
 * is a read-only cache.
 */
describe('proxy namespaces with auth on', () => {
  let upstream: TestRegistry;
  let proxy: TestRegistry;
  let auth: Auth;
  let work: string;
  let image: Awaited<ReturnType<RegistryClient['pushImage']>>;

  before(async () => {
    upstream = await startTestRegistry();
    image = await new RegistryClient(upstream.url).pushImage('team/app', 'v1', [2000]);
    work = await mkdtemp(join(tmpdir(), 'berth-proxy-auth-'));
    await addUsers(work);
    auth = await createAuth(
      {
        enabled: true,
        rules: [
          { repository: 'hub/**', everyone: true, allow: ['pull'] },
          { repository: 'hub/**', users: ['alice'], allow: ['push'] },
        ],
      },
      { dataDir: work, log: { info() {}, warn() {}, error() {} } },
    );
    const config = { proxy: { upstreams: [{ namespace: 'hub', urls: [upstream.url], timeoutSeconds: 2, maxWaitSeconds: 2 }] } } as BerthConfigInput;
    proxy = await startTestRegistry({
      config,
      deps: {
        authorizer: auth.authorizer,
        plugins: async (app) => {
          await app.register(auth.tokenRoutes);
        },
      },
    });
  });
  after(async () => {
    await proxy?.close();
    await auth?.close();
    await upstream?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const token = async (scope: string, who?: 'alice' | 'bob'): Promise<string> => {
    const got = await getToken({ url: proxy.url } as Parameters<typeof getToken>[0], [scope], who ? basic(who, PASSWORDS[who]) : undefined);
    assert.equal(got.status, 200);
    return got.body.token;
  };

  it('challenges an anonymous push with 401 before saying the namespace is read-only', async () => {
    for (const [method, path] of [
      ['PUT', '/v2/hub/team/app/manifests/v2'],
      ['POST', '/v2/hub/team/app/blobs/uploads/'],
      ['DELETE', `/v2/hub/team/app/manifests/${image.manifest.digest}`],
    ] as const) {
      const res = await fetch(`${proxy.url}${path}`, {
        method,
        ...(method === 'PUT' ? { body: image.manifest.data, headers: { 'content-type': OCI_MANIFEST } } : {}),
      });
      assert.equal(res.status, 401, `${method} ${path}`);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm=.*scope="repository:hub\/team\/app:/);
      assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNAUTHORIZED');
    }
  });

  it('denies a caller without push rights as auth does, and tells one with them the namespace is a cache', async () => {
    const bobs = await token('repository:hub/team/app:pull,push', 'bob');
    const denied = await fetch(`${proxy.url}/v2/hub/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${bobs}` } });
    assert.equal(denied.status, 403);
    const bobBody = (await denied.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(bobBody.errors[0]?.code, 'DENIED');
    assert.doesNotMatch(bobBody.errors[0]?.message ?? '', /pull-through cache/);

    const alices = await token('repository:hub/team/app:pull,push', 'alice');
    const refused = await fetch(`${proxy.url}/v2/hub/team/app/manifests/v2`, {
      method: 'PUT',
      body: image.manifest.data,
      headers: { authorization: `Bearer ${alices}`, 'content-type': OCI_MANIFEST },
    });
    assert.equal(refused.status, 403);
    const body = (await refused.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]?.code, 'DENIED');
    assert.equal(body.errors[0]?.message, `hub/ is a pull-through cache of ${upstream.url}: push to another namespace`);
  });

  it('pulls through the cache with an anonymous pull token', async () => {
    const pull = await token('repository:hub/team/app:pull');
    const res = await fetch(`${proxy.url}/v2/hub/team/app/manifests/v1`, { headers: { authorization: `Bearer ${pull}`, accept: OCI_MANIFEST } });
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), image.manifest.digest);
  });
});
