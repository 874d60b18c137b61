import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { ReplicationMetadata } from '../../storage-drivers/metadata/replication-types.js';
import type { ReplicationEndpoint } from '../../server/registry/replication/endpoint.js';
import { parseConfig } from '../../server/config.js';
import { compileRule, type ReplicationRule } from '../../server/registry/replication/rules.js';
import { copyOptionsOf, RuleSync } from '../../server/registry/replication/sync.js';
import { blob, imageManifest, OCI_INDEX, OCI_MANIFEST, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

/**
 * One rule's sync between two real Berths (each its own storage and metadata), through the
 * domain services on both sides: what the copier and the conflict and delete rules do, without HTTP
 * in between (the HTTP side has its own tests).
 */
describe('replication: a rule syncing tags between two Berths', () => {
  let a: TestRegistry;
  let b: TestRegistry;
  let source: ReplicationEndpoint;
  let target: ReplicationEndpoint;
  let clientA: RegistryClient;
  let clientB: RegistryClient;
  const signal = new AbortController().signal;

  function scope(overrides: Record<string, unknown> = {}): ReplicationRule {
    const config = parseConfig({
      replication: {
        registries: [{ name: 'b', urls: ['http://127.0.0.1:1'] }],
        rules: [{ name: 'to-b', direction: 'push', registry: 'b', repositories: ['team/**'], destination: { addPrefix: 'mirror' }, ...overrides }],
      },
    });
    const [rule] = config.replication.rules;
    assert.ok(rule);
    return compileRule(rule);
  }

  function records(): ReplicationMetadata {
    return b.metadata.replication;
  }

  function sync(overrides: Record<string, unknown> = {}): RuleSync {
    const rule = scope(overrides);
    return new RuleSync({ rule, source, target, records: records(), copy: copyOptionsOf(rule), now: Date.now });
  }

  async function tagOn(client: RegistryClient, repo: string, tag: string): Promise<string | undefined> {
    const res = await client.fetch(`/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { Accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } });
    return res.status === 200 ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
  }

  async function signatureOf(repo: string, subject: Blob): Promise<Blob> {
    const empty = blob('{}');
    await clientA.pushBlob(repo, empty);
    const sig = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.signature',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: empty.data.length },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: empty.data.length }],
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.data.length },
      }),
    );
    await clientA.pushManifest(repo, sig.digest, sig);
    return sig;
  }

  before(async () => {
    a = await startTestRegistry();
    b = await startTestRegistry();
    source = a.app.replication.localEndpoint('to-b');
    target = b.app.replication.localEndpoint('to-b');
    clientA = new RegistryClient(a.url);
    clientB = new RegistryClient(b.url);
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });
  beforeEach(async () => {
    await records().clearRule('to-b');
  });

  it('copies an image with its digest, blobs and referrers, then finds it in step', async () => {
    const { manifest, layers } = await clientA.pushImage('team/app', 'v1', [4096, 70_000]);
    const sig = await signatureOf('team/app', manifest);
    const first = await sync().syncTag('team/app', 'v1', signal);
    assert.equal(first.outcome, 'copied');
    assert.equal(first.digest, manifest.digest);
    assert.equal(await tagOn(clientB, 'mirror/team/app', 'v1'), manifest.digest);
    for (const layer of layers) {
      const res = await clientB.fetch(`/v2/mirror/team/app/blobs/${layer.digest}`);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), layer.data);
    }
    const referrers = (await (await clientB.fetch(`/v2/mirror/team/app/referrers/${manifest.digest}`)).json()) as { manifests: { digest: string }[] };
    assert.deepEqual(
      referrers.manifests.map((m) => m.digest),
      [sig.digest],
    );
    const again = await sync().syncTag('team/app', 'v1', signal);
    assert.deepEqual([again.outcome, again.bytes], ['in_sync', 0]);
  });

  it('moves a tag the rule set when it moves on the source; mounts a blob another target repository has', async () => {
    const one = await clientA.pushImage('team/move', 'stable', [2048]);
    await sync().syncTag('team/move', 'stable', signal);
    const two = await clientA.pushImage('team/move', 'stable', [3000]);
    assert.notEqual(one.manifest.digest, two.manifest.digest);
    const moved = await sync().syncTag('team/move', 'stable', signal);
    assert.equal(moved.outcome, 'copied');
    assert.equal(await tagOn(clientB, 'mirror/team/move', 'stable'), two.manifest.digest);
    // The same image under another source repository: its blobs are on the target already.
    for (const part of [two.config, ...two.layers]) await clientA.pushBlob('team/other', part);
    await clientA.pushManifest('team/other', 'copy', two.manifest);
    const copied = await sync().syncTag('team/other', 'copy', signal);
    assert.deepEqual([copied.outcome, copied.bytes], ['copied', 0]);
  });

  it('settles a tag changed on the target by its conflict policy: skip, backup, overwrite', async () => {
    const src = await clientA.pushImage('team/c', 'v1', [1000]);
    const theirs = await clientB.pushImage('mirror/team/c', 'v1', [1500]);
    const skipped = await sync().syncTag('team/c', 'v1', signal);
    assert.equal(skipped.outcome, 'conflict_skipped');
    assert.equal(await tagOn(clientB, 'mirror/team/c', 'v1'), theirs.manifest.digest);
    const [record] = await records().getArtifacts('to-b', ['mirror/team/c:v1']);
    assert.match(JSON.parse(record ?? '{}').error as string, /did not put there/);

    const backedUp = await sync({ conflict: 'backup' }).syncTag('team/c', 'v1', signal);
    assert.equal(backedUp.outcome, 'backed_up');
    assert.equal(await tagOn(clientB, 'mirror/team/c', 'v1'), src.manifest.digest);
    assert.equal(await tagOn(clientB, 'mirror/team/c', `v1-replaced-${theirs.manifest.digest.slice(7, 19)}`), theirs.manifest.digest);

    const again = await clientB.pushImage('mirror/team/c', 'v1', [1600]);
    const overwritten = await sync({ conflict: 'overwrite' }).syncTag('team/c', 'v1', signal);
    assert.equal(overwritten.outcome, 'overwritten');
    assert.notEqual(await tagOn(clientB, 'mirror/team/c', 'v1'), again.manifest.digest);
  });

  it('propagates a tag deletion only when the rule deletes, and only a tag the rule set', async () => {
    await clientA.pushImage('team/d', 'old', [500]);
    await clientA.pushImage('team/d', 'keep', [600]);
    await sync().syncTag('team/d', 'old', signal);
    await sync().syncTag('team/d', 'keep', signal);
    const theirs = await clientB.pushImage('mirror/team/d', 'mine', [700]);
    assert.equal((await clientA.fetch('/v2/team/d/manifests/old', { method: 'DELETE' })).status, 202);

    const kept = await sync().syncTag('team/d', 'old', signal);
    assert.equal(kept.outcome, 'not_on_source');
    assert.ok(await tagOn(clientB, 'mirror/team/d', 'old'), 'deletes are off by default');

    const failures: string[] = [];
    const results: string[] = [];
    await sync({ deletes: true }).reconcileRepository('team/d', {
      signal,
      concurrency: 2,
      each: (r) => ('failed' in r ? failures.push(`${r.tag}: ${r.error.message}`) : results.push(`${r.tag} ${r.outcome}`)),
    });
    assert.deepEqual(failures, []);
    assert.deepEqual(results.sort(), ['keep in_sync', 'mine not_on_source', 'old deleted']);
    assert.equal(await tagOn(clientB, 'mirror/team/d', 'old'), undefined);
    assert.equal(await tagOn(clientB, 'mirror/team/d', 'mine'), theirs.manifest.digest, 'a tag the rule never set stays');
  });

  it('copies an index with its children, or only the platforms the rule names', async () => {
    const amd = await clientA.pushImage('team/multi', 'amd', [800]);
    const arm = await clientA.pushImage('team/multi', 'arm', [900]);
    const index = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: OCI_MANIFEST, digest: amd.manifest.digest, size: amd.manifest.data.length, platform: { os: 'linux', architecture: 'amd64' } },
          { mediaType: OCI_MANIFEST, digest: arm.manifest.digest, size: arm.manifest.data.length, platform: { os: 'linux', architecture: 'arm64' } },
        ],
      }),
    );
    await clientA.pushManifest('team/multi', 'latest', index, OCI_INDEX);
    const all = await sync().syncTag('team/multi', 'latest', signal);
    assert.equal(all.outcome, 'copied');
    assert.equal(await tagOn(clientB, 'mirror/team/multi', 'latest'), index.digest);
    assert.equal(await tagOn(clientB, 'mirror/team/multi', arm.manifest.digest), arm.manifest.digest);

    const amdOnly = sync({ platforms: ['linux/amd64'], destination: { addPrefix: 'amd' } });
    assert.equal((await amdOnly.syncTag('team/multi', 'latest', signal)).outcome, 'copied');
    assert.equal(await tagOn(clientB, 'amd/team/multi', 'latest'), index.digest, 'the index keeps its digest');
    assert.equal(await tagOn(clientB, 'amd/team/multi', amd.manifest.digest), amd.manifest.digest);
    assert.equal(await tagOn(clientB, 'amd/team/multi', arm.manifest.digest), undefined, 'arm64 is left out');
    void imageManifest;
  });
});
