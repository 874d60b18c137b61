import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { distributionAvailable, startDistribution, type Target } from '../../bench/targets.js';
import type { RemoteEndpoint } from '../../server/registry/replication/remote.js';
import { blob, imageManifest, OCI_INDEX, OCI_MANIFEST, randomBlob, sha256 } from '../helpers/oci.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { collect } from '../proxy/helpers.js';
import { asFetched, bufferSource, makeRemote, referrerOf, signal } from './helpers.js';

/**
 * CNCF distribution 2.8 (Debian's docker-registry) as an anonymous target: what many self-hosted
 * mirrors run. It takes chunked uploads in order only, mounts, deletes by digest but not by tag, and
 * has no referrers API (referrers come from the `sha256-<hex>` tag).
 */
describe('replication remote: distribution as a target', { skip: distributionAvailable() ? false : 'no /usr/bin/docker-registry' }, () => {
  let scratch: ScratchDir;
  let registry: Target;
  let remote: RemoteEndpoint;
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = randomBlob(180_000);
  const manifest = imageManifest(config, [layer]);

  before(async () => {
    scratch = await makeScratchDir('repl-remote-distribution');
    registry = await startDistribution(scratch.path);
    remote = makeRemote({ urls: [registry.url] }).remote;
  });
  after(async () => {
    remote?.close();
    await registry?.stop();
    await scratch?.remove();
  });

  it('uploads blobs in chunks and a manifest, and lists the tag', async () => {
    const source = bufferSource(layer.data);
    assert.equal(await remote.putBlob('mirror/app', layer.digest, layer.size, source.open, { chunkBytes: 50_000, signal: signal() }), 'uploaded');
    assert.equal(
      await remote.putBlob('mirror/app', config.digest, config.size, bufferSource(config.data).open, { chunkBytes: 50_000, signal: signal() }),
      'uploaded',
    );
    assert.equal(await remote.putBlob('mirror/app', layer.digest, layer.size, source.open, { chunkBytes: 50_000, signal: signal() }), 'present');
    await remote.putManifest('mirror/app', 'v1', asFetched(manifest), signal());
    assert.deepEqual(await remote.tags('mirror/app', signal()), ['v1']);
    assert.equal(await remote.tags('mirror/none', signal()), undefined);
    assert.deepEqual(await remote.headManifest('mirror/app', 'v1', signal()), { digest: manifest.digest, mediaType: OCI_MANIFEST, size: manifest.size });
    const back = await remote.openBlob('mirror/app', layer.digest, 0, signal());
    assert.equal(sha256(await collect(back.stream)), layer.digest);
    const names: string[] = [];
    for await (const name of remote.repositories(signal())) names.push(name);
    assert.deepEqual(names, ['mirror/app']);
  });

  it('mounts a blob between repositories', async () => {
    const none = bufferSource(Buffer.alloc(0));
    assert.equal(
      await remote.putBlob('mirror/copy', layer.digest, layer.size, none.open, { mountFrom: ['mirror/app'], chunkBytes: 50_000, signal: signal() }),
      'mounted',
    );
    assert.deepEqual(none.opened, []);
  });

  it('keeps the tag schema index of a referrer it pushes, and reads referrers from it, when the referrers API is missing', async () => {
    const sbom = referrerOf(manifest, config);
    await remote.putManifest('mirror/app', sbom.digest, asFetched(sbom), signal());
    const listed = [{ digest: sbom.digest, mediaType: OCI_MANIFEST, size: sbom.size, artifactType: 'application/vnd.example.sbom' }];
    assert.deepEqual(await remote.referrers('mirror/app', manifest.digest, signal()), listed);
    const tag = await remote.getManifest('mirror/app', `sha256-${manifest.digest.slice('sha256:'.length)}`, signal());
    assert.equal(tag?.mediaType, OCI_INDEX);
    // Pushed again: listed once.
    await remote.putManifest('mirror/app', sbom.digest, asFetched(sbom), signal());
    assert.deepEqual(await remote.referrers('mirror/app', manifest.digest, signal()), listed);
  });

  it('cannot delete a tag, but deletes the manifest by digest', async () => {
    assert.equal(await remote.deleteTag('mirror/app', 'v1', signal()), 'unsupported');
    assert.equal(await remote.deleteManifest('mirror/app', manifest.digest, signal()), true);
    assert.equal(await remote.headManifest('mirror/app', 'v1', signal()), undefined);
    assert.equal(await remote.deleteManifest('mirror/app', manifest.digest, signal()), false);
  });
});
