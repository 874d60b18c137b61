import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import type { ReplicationObservation } from '../../server/registry/replication/service.js';
import { basic } from '../auth/harness.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { OCI_MANIFEST, RegistryClient, sha256, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { ObservationLog } from './helpers.js';

/**
 * A pull rule from a Berth with token auth into this Berth, on its schedule alone (reconcileSeconds: 1,
 * never runNow): an exact repository name, a semver filter, and copies that are ordinary local content.
 */
describe('replication: a pull rule from a Berth with token auth', () => {
  let scratch: ScratchDir;
  let auth: Auth;
  let upstream: TestRegistry;
  let local: TestRegistry;
  let source: RegistryClient;
  let client: RegistryClient;
  const log = new ObservationLog();
  const observations = log.all;
  const seen = (match: (o: ReplicationObservation) => boolean) => log.seen(match);

  const copied = (tag: string, digest: string) => (o: ReplicationObservation) =>
    o.kind === 'tag' && o.via === 'reconcile' && o.result.tag === tag && o.result.outcome === 'copied' && o.result.digest === digest;

  async function digestOn(c: RegistryClient, repo: string, reference: string): Promise<string | undefined> {
    const res = await c.fetch(`/v2/${repo}/manifests/${reference}`, { method: 'HEAD', headers: { Accept: OCI_MANIFEST } });
    return res.status === 200 ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
  }

  before(async () => {
    scratch = await makeScratchDir('repl-pull-rule');
    await addUsers(scratch.path);
    auth = await createAuth({ ...baseConfig, enabled: true }, { dataDir: scratch.path, log: { info() {}, warn() {}, error() {} } });
    upstream = await startTestRegistry({
      deps: {
        authorizer: auth.authorizer,
        plugins: async (app) => {
          await app.register(auth.tokenRoutes);
        },
      },
    });
    const q = new URLSearchParams({ service: 'berth', scope: 'repository:team/app:pull,push' });
    const res = await fetch(`${upstream.url}/auth/token?${q}`, { headers: { authorization: basic('alice', PASSWORDS.alice) } });
    const { token } = (await res.json()) as { token: string };
    source = new RegistryClient(upstream.url, { authorization: `Bearer ${token}` });
    const passwordFile = join(scratch.path, 'src-password');
    await writeFile(passwordFile, `${PASSWORDS.alice}\n`);
    local = await startTestRegistry({
      config: {
        replication: {
          registries: [{ name: 'src', urls: [upstream.url], username: 'alice', passwordFile }],
          rules: [{ name: 'from-src', direction: 'pull', registry: 'src', repositories: ['team/app'], tagSemver: '>=1.2.0 <2', reconcileSeconds: 1 }],
        },
      },
      deps: {
        onReplication: log.record,
      },
    });
    client = new RegistryClient(local.url);
  });
  after(async () => {
    await local?.close();
    await upstream?.close();
    await auth?.close();
    await scratch?.remove();
  });

  const pushed = new Map<string, { manifest: Blob; layers: Blob[] }>();

  it('copies the tags in the range on its schedule, and only those', async () => {
    for (const tag of ['1.1.0', '1.2.0', '1.5.3', '2.0.0', 'latest']) pushed.set(tag, await source.pushImage('team/app', tag, [4000]));
    await seen(copied('1.2.0', pushed.get('1.2.0')?.manifest.digest ?? ''));
    await seen(copied('1.5.3', pushed.get('1.5.3')?.manifest.digest ?? ''));
    for (const tag of ['1.2.0', '1.5.3']) assert.equal(await digestOn(client, 'team/app', tag), pushed.get(tag)?.manifest.digest);
    for (const tag of ['1.1.0', '2.0.0', 'latest']) assert.equal(await digestOn(client, 'team/app', tag), undefined, `${tag} is not in the range`);
    const tags = (await (await client.fetch('/v2/team/app/tags/list')).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['1.2.0', '1.5.3']);
  });

  it('picks up a new source tag on the next scheduled pass', async () => {
    const from = observations.length;
    pushed.set('1.9.0', await source.pushImage('team/app', '1.9.0', [6000]));
    await seen(copied('1.9.0', pushed.get('1.9.0')?.manifest.digest ?? ''));
    assert.equal(await digestOn(client, 'team/app', '1.9.0'), pushed.get('1.9.0')?.manifest.digest);
    // The pass that copied it ends with a run of its own: the scheduler's, as nothing else asked for one.
    await seen((o) => o.kind === 'run' && observations.indexOf(o) >= from && o.summary.tags.copied === 1);
    const status = await local.app.replication.service.status('from-src');
    assert.equal(status?.direction, 'pull');
    assert.equal(status?.state.lastRun?.result, 'ok', status?.state.lastRun?.lastError);
  });

  it('leaves ordinary local content: pulled by digest, counted in the quota usage', async () => {
    for (const tag of ['1.2.0', '1.5.3', '1.9.0']) {
      const image = pushed.get(tag);
      assert.ok(image);
      const manifest = await client.fetch(`/v2/team/app/manifests/${image.manifest.digest}`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(manifest.status, 200);
      assert.equal(sha256(Buffer.from(await manifest.arrayBuffer())), image.manifest.digest);
      for (const layer of image.layers) {
        const res = await client.fetch(`/v2/team/app/blobs/${layer.digest}`);
        assert.equal(res.status, 200);
        assert.equal(sha256(Buffer.from(await res.arrayBuffer())), layer.digest);
      }
    }
    const report = (await (await client.fetch('/api/v1/quotas?namespace=team')).json()) as { usedBytes: number };
    // Three images of 4000–6000-byte layers plus their configs and manifests; nothing of the tags left out.
    const layerBytes = 4000 + 4000 + 6000;
    assert.ok(report.usedBytes >= layerBytes, JSON.stringify(report));
    assert.ok(report.usedBytes < layerBytes + 3 * 4000, JSON.stringify(report));
  });
});
