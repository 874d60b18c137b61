import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { distributionAvailable, startDistribution, type Target } from '../../bench/targets.js';
import type { ReplicationObservation } from '../../server/registry/replication/service.js';
import type { RunSummary } from '../../server/registry/replication/rule-state.js';
import { blob, imageManifest, OCI_INDEX, OCI_MANIFEST, randomBlob, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { referrerOf, startInterposer, type Interposer } from './helpers.js';

const MiB = 1024 * 1024;
const ACCEPT = `${OCI_MANIFEST}, ${OCI_INDEX}`;

/**
 * A push rule from a Berth to CNCF distribution 2.8 (Debian's docker-registry), end to end over HTTP:
 * distribution has no referrers API (the rule keeps the `sha256-<hex>` tag index), cannot delete a tag
 * (deletes go by digest, when that is safe), and takes chunked uploads. Passes are run on request
 * (onPush: false), so each test knows which pass did what.
 */
describe('replication: a push rule from Berth to distribution', { skip: distributionAvailable() ? false : 'no /usr/bin/docker-registry' }, () => {
  let scratch: ScratchDir;
  let dist: Target;
  let interposer: Interposer;
  let berth: TestRegistry;
  let source: RegistryClient;
  let target: RegistryClient;
  const observations: ReplicationObservation[] = [];

  before(async () => {
    scratch = await makeScratchDir('repl-to-distribution');
    dist = await startDistribution(scratch.path);
    // Sees every request the rule sends, to tell a chunked upload from a monolithic one.
    interposer = await startInterposer(dist.url, () => ({ handled: false }));
    berth = await startTestRegistry({
      config: {
        replication: {
          registries: [{ name: 'dist', urls: [interposer.url], timeoutSeconds: 30 }],
          rules: [
            {
              name: 'to-dist',
              direction: 'push',
              registry: 'dist',
              repositories: ['team/**'],
              destination: { addPrefix: 'mirror' },
              onPush: false,
              reconcileSeconds: 0,
              deletes: true,
              conflict: 'backup',
              chunkBytes: 5 * MiB,
            },
          ],
        },
      },
      deps: { onReplication: (o) => observations.push(o) },
    });
    source = new RegistryClient(berth.url);
    target = new RegistryClient(dist.url);
  });
  after(async () => {
    await berth?.close();
    await interposer?.close();
    await dist?.stop();
    await scratch?.remove();
  });

  async function pass(): Promise<RunSummary> {
    const before = observations.length;
    await berth.app.replication.service.runNow('to-dist');
    const run = observations.slice(before).find((o) => o.kind === 'run');
    assert.ok(run?.kind === 'run', 'the pass ran');
    return run.summary;
  }

  async function digestOn(client: RegistryClient, repo: string, reference: string): Promise<string | undefined> {
    const res = await client.fetch(`/v2/${repo}/manifests/${reference}`, { method: 'HEAD', headers: { Accept: ACCEPT } });
    return res.status === 200 ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
  }

  /** distribution 2.8 takes no monolithic POST: open an upload, then PUT the bytes to it. */
  async function pushToDistribution(repo: string, b: Blob): Promise<void> {
    const opened = await target.fetch(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.equal(opened.status, 202);
    const location = new URL(opened.headers.get('location') ?? '', dist.url);
    location.searchParams.set('digest', b.digest);
    const put = await fetch(location, { method: 'PUT', body: b.data, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(put.status, 201);
  }

  async function pushPlatformImage(repo: string, architecture: string): Promise<Blob> {
    const config = blob(JSON.stringify({ architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = randomBlob(3000);
    for (const b of [config, layer]) await source.pushBlob(repo, b);
    const manifest = imageManifest(config, [layer]);
    await source.pushManifest(repo, manifest.digest, manifest);
    return manifest;
  }

  it('copies an index of two platforms and its signature with the same digests, and keeps the referrers tag', async () => {
    const amd64 = await pushPlatformImage('team/app', 'amd64');
    const arm64 = await pushPlatformImage('team/app', 'arm64');
    const index = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: OCI_MANIFEST, digest: amd64.digest, size: amd64.size, platform: { os: 'linux', architecture: 'amd64' } },
          { mediaType: OCI_MANIFEST, digest: arm64.digest, size: arm64.size, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        ],
      }),
    );
    await source.pushManifest('team/app', 'v1', index, OCI_INDEX);
    const empty = blob('{}');
    await source.pushBlob('team/app', empty);
    const signature = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.signature',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: empty.size },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: empty.size }],
        subject: { mediaType: OCI_INDEX, digest: index.digest, size: index.size },
        annotations: { 'org.example.signed-by': 'ci' },
      }),
    );
    await source.pushManifest('team/app', signature.digest, signature);

    const summary = await pass();
    assert.equal(summary.result, 'ok', summary.lastError);
    assert.equal(await digestOn(target, 'mirror/team/app', 'v1'), index.digest);
    for (const m of [amd64, arm64, signature]) assert.equal(await digestOn(target, 'mirror/team/app', m.digest), m.digest);
    // distribution has no referrers API: the rule keeps the tag schema's index, as the OCI spec asks of a pusher.
    const res = await target.fetch(`/v2/mirror/team/app/manifests/sha256-${index.digest.slice('sha256:'.length)}`, { headers: { Accept: OCI_INDEX } });
    assert.equal(res.status, 200);
    const listed = (await res.json()) as { manifests: { digest: string; artifactType?: string; annotations?: Record<string, string> }[] };
    assert.deepEqual(listed.manifests, [
      {
        mediaType: OCI_MANIFEST,
        digest: signature.digest,
        size: signature.size,
        artifactType: 'application/vnd.example.signature',
        annotations: { 'org.example.signed-by': 'ci' },
      },
    ]);
    // A second pass finds everything in step and lists the signature once.
    const again = await pass();
    assert.deepEqual(again.tags, { in_sync: 1, not_on_source: 1 }, 'v1 in step; the referrers tag is not the rule’s');
    const relisted = (await (
      await target.fetch(`/v2/mirror/team/app/manifests/sha256-${index.digest.slice(7)}`, { headers: { Accept: OCI_INDEX } })
    ).json()) as {
      manifests: unknown[];
    };
    assert.equal(relisted.manifests.length, 1);
  });

  it('lists a referrer again when the referrers tag on distribution lost it', async () => {
    const { manifest } = await source.pushImage('team/signed', 'v1', [1000]);
    const empty = blob('{}');
    await source.pushBlob('team/signed', empty);
    const sbom = referrerOf(manifest, empty);
    await source.pushManifest('team/signed', sbom.digest, sbom);
    await pass();
    const tag = `sha256-${manifest.digest.slice('sha256:'.length)}`;
    // Someone (another pusher racing this one, say) rewrote the index without it.
    await target.pushManifest('mirror/team/signed', tag, blob(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] })), OCI_INDEX);
    await pass();
    const listed = (await (await target.fetch(`/v2/mirror/team/signed/manifests/${tag}`, { headers: { Accept: OCI_INDEX } })).json()) as {
      manifests: { digest: string }[];
    };
    assert.deepEqual(
      listed.manifests.map((m) => m.digest),
      [sbom.digest],
    );
  });

  it('moves a tag on distribution when it moves on Berth', async () => {
    const { manifest: first } = await source.pushImage('team/moving', 'v1', [2000]);
    await pass();
    assert.equal(await digestOn(target, 'mirror/team/moving', 'v1'), first.digest);
    const { manifest: second } = await source.pushImage('team/moving', 'v1', [2000]);
    const summary = await pass();
    assert.equal(await digestOn(target, 'mirror/team/moving', 'v1'), second.digest);
    assert.equal(summary.tags.copied, 1);
  });

  it('deletes a tag deleted on Berth by digest, refusing while another tag there still needs the digest', async () => {
    const { manifest: alone } = await source.pushImage('team/del', 'alone', [1000]);
    const { manifest: shared } = await source.pushImage('team/del', 'a', [1000]);
    await source.pushManifest('team/del', 'b', shared);
    await pass();
    assert.equal(await digestOn(target, 'mirror/team/del', 'b'), shared.digest);

    assert.equal((await source.fetch('/v2/team/del/manifests/alone', { method: 'DELETE' })).status, 202);
    assert.equal((await source.fetch('/v2/team/del/manifests/a', { method: 'DELETE' })).status, 202);
    const refused = await pass();
    assert.equal(await digestOn(target, 'mirror/team/del', 'alone'), undefined, 'deleted by digest: no other tag pointed at it');
    assert.equal(await digestOn(target, 'mirror/team/del', alone.digest), undefined);
    assert.equal(await digestOn(target, 'mirror/team/del', 'a'), shared.digest, 'kept: deleting the digest would drop b too');
    assert.equal(refused.result, 'partial');
    assert.match(
      refused.lastError ?? '',
      /cannot delete tag a by itself, and deleting sha256:[0-9a-f]{64} would also drop tag b, which local:team\/del still has/,
    );
    const status = await berth.app.replication.service.status('to-dist');
    const record = status?.behind.find((r) => r.key === 'mirror/team/del:a');
    assert.equal(record?.state, 'failed');
    assert.match(record?.error ?? '', /would also drop tag b/);

    // b deleted on Berth too: the digest is the rule's alone now, and both tags go with it.
    assert.equal((await source.fetch('/v2/team/del/manifests/b', { method: 'DELETE' })).status, 202);
    const done = await pass();
    assert.equal(done.result, 'ok', done.lastError);
    assert.equal(await digestOn(target, 'mirror/team/del', 'a'), undefined);
    assert.equal(await digestOn(target, 'mirror/team/del', 'b'), undefined);
    const after = await berth.app.replication.service.status('to-dist');
    assert.equal(
      after?.behind.find((r) => r.key.startsWith('mirror/team/del:')),
      undefined,
    );
  });

  it('keeps a tag changed on distribution under the backup tag before overwriting it (conflict: backup)', async () => {
    const { manifest: ours } = await source.pushImage('team/conflict', 'v1', [1500]);
    await pass();
    // Someone pushes another image to the same tag on distribution.
    const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, by: 'someone else' }));
    const layer = randomBlob(1500);
    for (const b of [config, layer]) await pushToDistribution('mirror/team/conflict', b);
    const theirs = imageManifest(config, [layer]);
    await target.pushManifest('mirror/team/conflict', 'v1', theirs);

    const summary = await pass();
    assert.equal(summary.tags.backed_up, 1, JSON.stringify(summary.tags));
    assert.equal(await digestOn(target, 'mirror/team/conflict', 'v1'), ours.digest);
    assert.equal(await digestOn(target, 'mirror/team/conflict', `v1-replaced-${theirs.digest.slice(7, 19)}`), theirs.digest);
  });

  it('uploads a 20 MiB layer in 5 MiB chunks', async () => {
    const { manifest, layers } = await source.pushImage('team/big', 'v1', [20 * MiB]);
    const seenBefore = interposer.seen.length;
    const summary = await pass();
    assert.equal(summary.result, 'ok', summary.lastError);
    assert.equal(await digestOn(target, 'mirror/team/big', 'v1'), manifest.digest);
    const head = await target.fetch(`/v2/mirror/team/big/blobs/${layers[0]?.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(20 * MiB));
    const patches = interposer.seen.slice(seenBefore).filter((r) => r.startsWith('PATCH /v2/mirror/team/big/blobs/uploads/'));
    assert.equal(patches.length, 4 + 1, 'four 5 MiB chunks of the layer, one of the config');
  });
});
