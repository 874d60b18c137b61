import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { UpstreamDeniedError, UpstreamNotFoundError } from '../../server/registry/proxy/errors.js';
import type { Upstream, UpstreamEvent } from '../../server/registry/proxy/upstream.js';
import { basic } from '../auth/harness.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { OCI_MANIFEST, RegistryClient, sha256, type Blob } from '../helpers/oci.js';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { collect, makeUpstream } from './helpers.js';

/**
 * A real Berth with its token service as the upstream: the Upstream client follows its Bearer
 * challenge, logs in with the configured user (password from the environment) and pulls what was pushed.
 */
describe('proxy upstream: a Berth with token auth', () => {
  let scratch: ScratchDir;
  let auth: Auth;
  let reg: TestRegistry;
  let image: { manifest: Blob; config: Blob; layers: Blob[] };
  const open: Upstream[] = [];

  function upstream(config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): { upstream: Upstream; events: UpstreamEvent[] } {
    const made = makeUpstream({ urls: [reg.url], ...config }, { env });
    open.push(made.upstream);
    return made;
  }

  before(async () => {
    scratch = await makeScratchDir('proxy-berth');
    await addUsers(scratch.path);
    auth = await createAuth({ ...baseConfig, enabled: true }, { dataDir: scratch.path, log: { info() {}, warn() {}, error() {} } });
    reg = await startTestRegistry({
      deps: {
        authorizer: auth.authorizer,
        plugins: async (app) => {
          await app.register(auth.tokenRoutes);
        },
      },
    });
    const q = new URLSearchParams({ service: 'berth', scope: 'repository:team/app:pull,push' });
    const res = await fetch(`${reg.url}/auth/token?${q}`, { headers: { authorization: basic('alice', PASSWORDS.alice) } });
    assert.equal(res.status, 200);
    const { token } = (await res.json()) as { token: string };
    image = await new RegistryClient(reg.url, { authorization: `Bearer ${token}` }).pushImage('team/app', 'v1', [200_000, 3000]);
  });
  after(async () => {
    for (const u of open) u.close();
    await reg?.close();
    await auth?.close();
    await scratch?.remove();
  });

  it('HEADs and GETs the manifest and streams a blob with the configured credentials', async () => {
    const { upstream: up, events } = upstream({ username: 'alice', passwordEnv: 'HUB_PW' }, { HUB_PW: PASSWORDS.alice });
    const head = await up.headManifest('team/app', 'v1', [OCI_MANIFEST]);
    assert.deepEqual(head, { digest: image.manifest.digest, mediaType: OCI_MANIFEST, size: image.manifest.size });

    const byTag = await up.getManifest('team/app', 'v1', [OCI_MANIFEST]);
    assert.equal(byTag.digest, image.manifest.digest);
    assert.equal(byTag.mediaType, OCI_MANIFEST);
    assert.deepEqual(byTag.bytes, image.manifest.data);
    const byDigest = await up.getManifest('team/app', image.manifest.digest, [OCI_MANIFEST]);
    assert.deepEqual(byDigest.bytes, image.manifest.data);

    const layer = image.layers[0] as Blob;
    const blob = await up.openBlob('team/app', layer.digest);
    assert.equal(blob.size, layer.size);
    assert.equal(sha256(await collect(blob.stream)), layer.digest);

    // One challenge, one login: every later request carried the cached token at once.
    assert.equal(events.filter((e) => e.kind === 'token').length, 1);
    assert.equal(events.filter((e) => e.kind === 'request' && e.status === 401).length, 1);
  });

  it('answers undefined to a HEAD of an unknown tag and UpstreamNotFoundError to a GET', async () => {
    const { upstream: up } = upstream({ username: 'alice', passwordEnv: 'HUB_PW' }, { HUB_PW: PASSWORDS.alice });
    assert.equal(await up.headManifest('team/app', 'nope', [OCI_MANIFEST]), undefined);
    await assert.rejects(up.getManifest('team/app', 'nope', [OCI_MANIFEST]), UpstreamNotFoundError);
    await assert.rejects(up.openBlob('team/app', sha256('never pushed')), UpstreamNotFoundError);
  });

  it('is denied anonymously and with a wrong password, saying who was refused', async () => {
    const { upstream: anonymous } = upstream({});
    await assert.rejects(anonymous.getManifest('team/app', 'v1', [OCI_MANIFEST]), (err: unknown) => {
      assert.ok(err instanceof UpstreamDeniedError, String(err));
      assert.match(err.message, /refused anonymous access/);
      return true;
    });
    const { upstream: wrong } = upstream({ username: 'alice', passwordEnv: 'HUB_PW' }, { HUB_PW: 'not-her-password' });
    await assert.rejects(wrong.headManifest('team/app', 'v1', [OCI_MANIFEST]), (err: unknown) => {
      assert.ok(err instanceof UpstreamDeniedError, String(err));
      assert.match(err.message, /token service .* refused the credentials of "alice"/);
      assert.doesNotMatch(err.message, /not-her-password/);
      return true;
    });
  });
});
