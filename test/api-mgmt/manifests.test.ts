// Manifest details and deletes over the management API, with auth on: an image whose config has
// history, an index over two platforms, referrers, tag/manifest/bulk deletes (one refused by an
// immutable-tag rule), the audit lines, and 401/403 for callers without the right.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { AuditLog, MemoryAuditSink } from '../../server/operations/audit.js';
import { operatorActionRecorder } from '../../server/operations/event-recorders.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { blob, imageManifest, OCI_INDEX, randomBlob, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const REPO = 'secret/app';

interface Details {
  digest: string;
  mediaType: string;
  size: number;
  artifactType?: string;
  subject?: string;
  tags: string[];
  config?: { digest: string; size: number; mediaType: string };
  layers: { digest: string; size: number; mediaType: string }[];
  totalSize: number;
  history?: { created?: string; createdBy?: string; emptyLayer: boolean; comment?: string }[];
  platform?: { os?: string; architecture?: string; variant?: string };
  children: { digest: string; size: number; platform?: { os?: string; architecture?: string; variant?: string } }[];
  referrers: { digest: string; artifactType?: string; mediaType: string; size: number }[];
}

describe('manifest details and deletes over the management API (auth on)', () => {
  let reg: TestRegistry;
  let auth: Auth;
  let work: string;
  let bob: RegistryClient;
  const sink = new MemoryAuditSink();

  async function tokenFor(user: keyof typeof PASSWORDS, repo: string, actions: string): Promise<string> {
    const res = await fetch(`${reg.url}/auth/token?service=berth&scope=${encodeURIComponent(`repository:${repo}:${actions}`)}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  /** An image whose config carries `history` and a platform, pushed under `tag`. */
  async function pushImage(tag: string, arch: string): Promise<{ manifest: ReturnType<typeof imageManifest>; config: Blob; layers: Blob[] }> {
    const config = blob(
      JSON.stringify({
        architecture: arch,
        os: 'linux',
        ...(arch === 'arm64' ? { variant: 'v8' } : {}),
        rootfs: { type: 'layers', diff_ids: [] },
        history: [
          { created: '2026-01-01T00:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:abc in /', comment: 'base' },
          { created: '2026-01-02T00:00:00Z', created_by: '/bin/sh -c #(nop) ENV A=1', empty_layer: true },
        ],
        nonce: tag,
      }),
    );
    const layers = [randomBlob(1000)];
    for (const b of [config, ...layers]) await bob.pushBlob(REPO, b);
    const manifest = imageManifest(config, layers);
    await bob.pushManifest(REPO, tag, manifest);
    return { manifest, config, layers };
  }

  function details(path: string, token: string): Promise<Response> {
    return fetch(`${reg.url}/api/v1/repositories/${path}`, { headers: { authorization: `Bearer ${token}` } });
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-mgmt-manifests-'));
    await addUsers(work);
    auth = await createAuth({ ...baseConfig, enabled: true }, { dataDir: work, log: { info() {}, warn() {}, error() {} } });
    reg = await startTestRegistry({
      config: { gc: { enabled: false }, immutableTags: { rules: [{ repositories: 'secret/**', tags: ['v*'] }] } },
      deps: {
        authorizer: auth.authorizer,
        plugins: async (app) => app.register(auth.tokenRoutes),
        onOperatorAction: operatorActionRecorder(new AuditLog(sink)),
      },
    });
    bob = new RegistryClient(reg.url, { authorization: `Bearer ${await tokenFor('bob', REPO, 'pull,push,delete')}` });
  });
  after(async () => {
    await reg?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('describes an image: config, layers, history and platform from the config, tags and referrers', async () => {
    const { manifest, config, layers } = await pushImage('latest', 'amd64');
    await bob.pushManifest(REPO, manifest.digest, manifest);
    const sbom = blob('{"sbom":true}');
    await bob.pushBlob(REPO, sbom);
    const empty = blob('{}');
    await bob.pushBlob(REPO, empty);
    const referrer = imageManifest(empty, [sbom], {
      artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: empty.size },
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifest.digest, size: manifest.size },
    });
    await bob.pushManifest(REPO, referrer.digest, referrer);
    await bob.pushManifest(REPO, 'stable', manifest);

    const token = await tokenFor('bob', REPO, 'pull');
    const res = await details(`${REPO}/manifests/latest`, token);
    assert.equal(res.status, 200);
    const body = (await res.json()) as Details;
    assert.equal(body.digest, manifest.digest);
    assert.equal(body.size, manifest.size);
    assert.deepEqual(body.tags, ['latest', 'stable']);
    assert.deepEqual(body.config, { digest: config.digest, size: config.size, mediaType: 'application/vnd.oci.image.config.v1+json' });
    assert.deepEqual(
      body.layers.map((l) => l.digest),
      layers.map((l) => l.digest),
    );
    assert.equal(body.totalSize, manifest.size + config.size + 1000);
    assert.deepEqual(body.history, [
      { created: '2026-01-01T00:00:00Z', createdBy: '/bin/sh -c #(nop) ADD file:abc in /', emptyLayer: false, comment: 'base' },
      { created: '2026-01-02T00:00:00Z', createdBy: '/bin/sh -c #(nop) ENV A=1', emptyLayer: true },
    ]);
    assert.deepEqual(body.platform, { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(body.children, []);
    assert.deepEqual(body.referrers, [
      { digest: referrer.digest, artifactType: 'application/spdx+json', mediaType: referrer.json.mediaType, size: referrer.size },
    ]);

    const byDigest = (await (await details(`${REPO}/manifests/${manifest.digest}`, token)).json()) as Details;
    assert.equal(byDigest.digest, manifest.digest);
    const ofReferrer = (await (await details(`${REPO}/manifests/${referrer.digest}`, token)).json()) as Details;
    assert.equal(ofReferrer.subject, manifest.digest);
    assert.equal(ofReferrer.artifactType, 'application/spdx+json');
  });

  it('describes an index: each child with its platform and size', async () => {
    const amd = await pushImage('amd', 'amd64');
    const arm = await pushImage('arm', 'arm64');
    const index = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: amd.manifest.json.mediaType, digest: amd.manifest.digest, size: amd.manifest.size, platform: { os: 'linux', architecture: 'amd64' } },
          {
            mediaType: arm.manifest.json.mediaType,
            digest: arm.manifest.digest,
            size: arm.manifest.size,
            platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
          },
        ],
      }),
    );
    await bob.pushManifest(REPO, 'multi', index, OCI_INDEX);
    const body = (await (await details(`${REPO}/manifests/multi`, await tokenFor('bob', REPO, 'pull'))).json()) as Details;
    assert.equal(body.mediaType, OCI_INDEX);
    assert.equal(body.config, undefined);
    assert.deepEqual(body.children, [
      { digest: amd.manifest.digest, size: amd.manifest.size, mediaType: amd.manifest.json.mediaType, platform: { os: 'linux', architecture: 'amd64' } },
      {
        digest: arm.manifest.digest,
        size: arm.manifest.size,
        mediaType: arm.manifest.json.mediaType,
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      },
    ]);
    const armDetails = (await (await details(`${REPO}/manifests/arm`, await tokenFor('bob', REPO, 'pull'))).json()) as Details;
    assert.deepEqual(armDetails.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
  });

  it('answers an unknown manifest 404 and a bad reference 400', async () => {
    const token = await tokenFor('bob', REPO, 'pull');
    assert.equal((await details(`${REPO}/manifests/nope`, token)).status, 404);
    assert.equal((await details(`${REPO}/manifests/sha256:zz`, token)).status, 400);
  });

  it('deletes a tag, a manifest, and a bulk list with an immutable tag refused by name', async () => {
    const headers = { authorization: `Bearer ${await tokenFor('bob', REPO, 'delete')}` };
    const one = await pushImage('to-untag', 'amd64');
    const untag = await fetch(`${reg.url}/api/v1/repositories/${REPO}/tags/to-untag`, { method: 'DELETE', headers });
    assert.equal(untag.status, 200);
    assert.equal(await reg.metadata.resolveTag(REPO, 'to-untag'), undefined);
    const drop = await fetch(`${reg.url}/api/v1/repositories/${REPO}/manifests/${one.manifest.digest}`, { method: 'DELETE', headers });
    assert.equal(drop.status, 200);
    assert.equal(await reg.metadata.getManifest(REPO, one.manifest.digest), undefined);
    assert.equal((await fetch(`${reg.url}/api/v1/repositories/${REPO}/manifests/${one.manifest.digest}`, { method: 'DELETE', headers })).status, 404);

    await pushImage('v1', 'amd64');
    await pushImage('tmp-a', 'amd64');
    const two = await pushImage('tmp-b', 'amd64');
    const bulk = await fetch(`${reg.url}/api/v1/repositories/${REPO}/delete`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ tags: ['tmp-a', 'v1', 'gone'], digests: [two.manifest.digest] }),
    });
    assert.equal(bulk.status, 207);
    const answer = (await bulk.json()) as { deleted: number; failed: number; results: Record<string, unknown>[] };
    assert.equal(answer.deleted, 2);
    assert.equal(answer.failed, 2);
    assert.deepEqual(answer.results[0], { tag: 'tmp-a', deleted: true });
    assert.equal(answer.results[1]?.deleted, false);
    assert.equal(answer.results[1]?.code, 'DENIED');
    assert.equal(answer.results[1]?.immutableTag, 'v1');
    assert.equal(answer.results[2]?.code, 'MANIFEST_UNKNOWN');
    assert.deepEqual(answer.results[3], { digest: two.manifest.digest, deleted: true });
    assert.notEqual(await reg.metadata.resolveTag(REPO, 'v1'), undefined);

    const single = await fetch(`${reg.url}/api/v1/repositories/${REPO}/tags/v1`, { method: 'DELETE', headers });
    assert.equal(single.status, 403);

    const audited = sink.events.filter((e) => e.action === 'api_tag_deleted' || e.action === 'api_manifest_deleted');
    assert.deepEqual(
      audited.map((e) => [e.action, e.repository, e.tag ?? e.digest, e.actor]),
      [
        ['api_tag_deleted', REPO, 'to-untag', 'bob'],
        ['api_manifest_deleted', REPO, one.manifest.digest, 'bob'],
        ['api_tag_deleted', REPO, 'tmp-a', 'bob'],
        ['api_manifest_deleted', REPO, two.manifest.digest, 'bob'],
      ],
    );
  });

  it('refuses a bulk body that is not two lists of strings', async () => {
    const headers = { authorization: `Bearer ${await tokenFor('bob', REPO, 'delete')}`, 'content-type': 'application/json' };
    for (const body of ['[]', '{"tags": "x"}', '{}', '{"digests": [1]}']) {
      const res = await fetch(`${reg.url}/api/v1/repositories/${REPO}/delete`, { method: 'POST', headers, body });
      assert.equal(res.status, 400, body);
    }
  });

  it('challenges anonymous callers and refuses users without pull or delete', async () => {
    const tagged = await pushImage('keep', 'amd64');
    const carol = { authorization: `Bearer ${await tokenFor('carol', REPO, 'pull,delete')}` };
    for (const [method, path, body] of [
      ['GET', `${REPO}/manifests/keep`, undefined],
      ['DELETE', `${REPO}/tags/keep`, undefined],
      ['DELETE', `${REPO}/manifests/${tagged.manifest.digest}`, undefined],
      ['POST', `${REPO}/delete`, '{"tags": ["keep"]}'],
    ] as const) {
      const init = { method, ...(body ? { body } : {}) };
      const anon = await fetch(`${reg.url}/api/v1/repositories/${path}`, { ...init, headers: { 'content-type': 'application/json' } });
      assert.equal(anon.status, 401, `${method} ${path}`);
      const denied = await fetch(`${reg.url}/api/v1/repositories/${path}`, { ...init, headers: { ...carol, 'content-type': 'application/json' } });
      assert.equal(denied.status, 403, `${method} ${path}`);
    }
    // A token for pull alone is sent back for one with delete, which bob may have.
    const pullOnly = { authorization: `Bearer ${await tokenFor('bob', REPO, 'pull')}` };
    const more = await fetch(`${reg.url}/api/v1/repositories/${REPO}/tags/keep`, { method: 'DELETE', headers: pullOnly });
    assert.equal(more.status, 401);
    assert.match(more.headers.get('www-authenticate') ?? '', /scope="repository:secret\/app:delete",error="insufficient_scope"/);
    assert.equal(await reg.metadata.resolveTag(REPO, 'keep'), tagged.manifest.digest);
  });
});
