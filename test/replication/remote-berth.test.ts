import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { ReplicationError } from '../../server/registry/replication/errors.js';
import type { RemoteEndpoint } from '../../server/registry/replication/remote.js';
import { basic } from '../auth/harness.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { blob, imageManifest, OCI_INDEX, OCI_MANIFEST, randomBlob, RegistryClient, sha256, type Blob } from '../helpers/oci.js';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { collect } from '../proxy/helpers.js';
import { asFetched, bufferSource, makeRemote, referrerOf, signal, startInterposer } from './helpers.js';

/**
 * A real Berth with token auth as the remote side: the endpoint logs in with the scopes each
 * operation needs (pull, pull+push, delete, pull on a mount's source), uploads in chunks, mounts,
 * lists, deletes and reads referrers.
 */
describe('replication remote: a Berth with token auth', () => {
  let scratch: ScratchDir;
  let auth: Auth;
  let reg: TestRegistry;
  let remote: RemoteEndpoint;
  let events: ReturnType<typeof makeRemote>['events'];
  let client: RegistryClient;
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = randomBlob(200_000);
  const manifest = imageManifest(config, [layer]);

  before(async () => {
    scratch = await makeScratchDir('repl-remote-berth');
    await addUsers(scratch.path);
    const rules = [...(baseConfig.rules ?? []), { repository: 'team/**', users: ['alice'], allow: ['delete'] }];
    auth = await createAuth({ ...baseConfig, rules, enabled: true }, { dataDir: scratch.path, log: { info() {}, warn() {}, error() {} } });
    reg = await startTestRegistry({
      deps: {
        authorizer: auth.authorizer,
        plugins: async (app) => {
          await app.register(auth.tokenRoutes);
        },
      },
    });
    ({ remote, events } = makeRemote({ urls: [reg.url], username: 'alice', passwordEnv: 'PW' }, { PW: PASSWORDS.alice }));
    const q = new URLSearchParams({ service: 'berth', scope: 'repository:team/app:pull,push' });
    const res = await fetch(`${reg.url}/auth/token?${q}`, { headers: { authorization: basic('alice', PASSWORDS.alice) } });
    const { token } = (await res.json()) as { token: string };
    client = new RegistryClient(reg.url, { authorization: `Bearer ${token}` });
  });
  after(async () => {
    remote?.close();
    await reg?.close();
    await auth?.close();
    await scratch?.remove();
  });

  it('uploads a blob in chunks, then finds it present', async () => {
    const source = bufferSource(layer.data);
    assert.equal(await remote.putBlob('team/app', layer.digest, layer.size, source.open, { chunkBytes: 64 * 1024, signal: signal() }), 'uploaded');
    assert.deepEqual(source.opened, [0]);
    const patches = events.filter((e) => e.kind === 'request' && e.status === 202).length;
    // POST + four PATCHes (200 000 bytes in 64 KiB chunks) answered 202.
    assert.ok(patches >= 5, `saw ${patches} 202 answers`);
    assert.equal(await remote.hasBlob('team/app', layer.digest, signal()), true);
    const back = await remote.openBlob('team/app', layer.digest, 0, signal());
    assert.equal(back.size, layer.size);
    assert.equal(sha256(await collect(back.stream)), layer.digest);
    const tail = await remote.openBlob('team/app', layer.digest, 150_000, signal());
    assert.equal(tail.size, layer.size);
    assert.deepEqual(await collect(tail.stream), layer.data.subarray(150_000));
    assert.equal(await remote.putBlob('team/app', layer.digest, layer.size, source.open, { chunkBytes: 64 * 1024, signal: signal() }), 'present');
    assert.deepEqual(source.opened, [0]);
  });

  it('stores a manifest byte for byte and lists its tag', async () => {
    const small = bufferSource(config.data);
    assert.equal(await remote.putBlob('team/app', config.digest, config.size, small.open, { chunkBytes: 64 * 1024, signal: signal() }), 'uploaded');
    await remote.putManifest('team/app', 'v1', asFetched(manifest), signal());
    assert.deepEqual(await remote.tags('team/app', signal()), ['v1']);
    assert.deepEqual(await remote.headManifest('team/app', 'v1', signal()), { digest: manifest.digest, mediaType: OCI_MANIFEST, size: manifest.size });
    const got = await remote.getManifest('team/app', manifest.digest, signal());
    assert.deepEqual(got?.bytes, manifest.data);
    assert.equal(await remote.headManifest('team/app', 'nope', signal()), undefined);
    assert.equal(await remote.getManifest('team/app', 'nope', signal()), undefined);
    assert.equal(await remote.tags('team/never', signal()), undefined);
    const names: string[] = [];
    for await (const name of remote.repositories(signal())) names.push(name);
    assert.ok(names.includes('team/app'), names.join(','));
  });

  it('mounts a blob from another repository it can pull', async () => {
    const none = bufferSource(Buffer.alloc(0));
    const result = await remote.putBlob('team/copy', layer.digest, layer.size, none.open, { mountFrom: ['team/app'], chunkBytes: 64 * 1024, signal: signal() });
    assert.equal(result, 'mounted');
    assert.deepEqual(none.opened, []);
    assert.equal(await remote.hasBlob('team/copy', layer.digest, signal()), true);
  });

  it('asks the token service for push on the target and pull on the mount source', async () => {
    const proxy = await startInterposer(reg.url, () => ({ handled: false }));
    const through = makeRemote({ urls: [proxy.url], username: 'alice', passwordEnv: 'PW' }, { PW: PASSWORDS.alice }).remote;
    try {
      const none = bufferSource(Buffer.alloc(0));
      const options = { mountFrom: ['team/app'], chunkBytes: 64 * 1024, signal: signal() };
      assert.equal(await through.putBlob('team/copy2', layer.digest, layer.size, none.open, options), 'mounted');
      const scopes = proxy.seen
        .filter((line) => line.startsWith('GET /auth/token?'))
        .map((line) => new URL(line.slice('GET '.length), proxy.url).searchParams.getAll('scope'));
      assert.deepEqual(scopes, [['repository:team/copy2:pull'], ['repository:team/copy2:pull,push', 'repository:team/app:pull']]);
    } finally {
      through.close();
      await proxy.close();
    }
  });

  it('lists referrers of a subject', async () => {
    const sbom = referrerOf(manifest, config);
    await remote.putManifest('team/app', sbom.digest, asFetched(sbom), signal());
    const refs = await remote.referrers('team/app', manifest.digest, signal());
    assert.deepEqual(refs, [{ digest: sbom.digest, mediaType: OCI_MANIFEST, size: sbom.size, artifactType: 'application/vnd.example.sbom' }]);
    assert.deepEqual(await remote.referrers('team/app', sha256('no such subject'), signal()), []);
  });

  it('deletes a tag, then finds it absent; deletes a manifest by digest', async () => {
    await remote.putManifest('team/app', 'gone', asFetched(manifest), signal());
    assert.equal(await remote.deleteTag('team/app', 'gone', signal()), 'deleted');
    assert.equal(await remote.deleteTag('team/app', 'gone', signal()), 'absent');
    assert.deepEqual(await remote.tags('team/app', signal()), ['v1']);

    const other: Blob = imageManifest(config, []);
    await client.pushManifest('team/app', 'other', other);
    assert.equal(await remote.deleteManifest('team/app', other.digest, signal()), true);
    assert.equal(await remote.deleteManifest('team/app', other.digest, signal()), false);
    assert.deepEqual(await remote.tags('team/app', signal()), ['v1']);
  });

  it('fails with a ReplicationError naming the registry, repository and status when refused', async () => {
    const err = await remote.putManifest('team/locked', 'v1', asFetched(manifest), signal()).then(
      () => assert.fail('pushed to a locked repository'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ReplicationError, String(err));
    assert.equal(err.retryable, false);
    assert.match(err.message, /registry target, team\/locked: PUT manifest v1 answered 40[13]/);
    assert.ok(!err.message.includes(PASSWORDS.alice));
  });

  it('reads an index pushed by someone else', async () => {
    const index = blob(
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: manifest.digest, size: manifest.size }] }),
    );
    await client.pushManifest('team/app', 'multi', index, OCI_INDEX);
    const head = await remote.headManifest('team/app', 'multi', signal());
    assert.deepEqual(head, { digest: index.digest, mediaType: OCI_INDEX, size: index.size });
  });
});
