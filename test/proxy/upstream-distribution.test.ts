import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { distributionAvailable, startDistribution, type Target } from '../../bench/targets.js';
import { UpstreamNotFoundError } from '../../server/registry/proxy/errors.js';
import type { Upstream } from '../../server/registry/proxy/upstream.js';
import { OCI_MANIFEST, RegistryClient, blob, imageManifest, randomBlob, sha256, type Blob } from '../helpers/oci.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { collect, makeUpstream } from './helpers.js';

/** distribution 2.8 has no monolithic POST ?digest=: start an upload, then PUT its bytes. */
async function pushImage(base: string, repo: string, tag: string): Promise<{ manifest: Blob; layers: Blob[] }> {
  const client = new RegistryClient(base);
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layers = [randomBlob(150_000)];
  for (const b of [config, ...layers]) {
    const started = await client.fetch(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    await started.arrayBuffer();
    assert.equal(started.status, 202);
    const location = new URL(started.headers.get('location') ?? '', base);
    location.searchParams.set('digest', b.digest);
    const put = await fetch(location, { method: 'PUT', body: b.data, headers: { 'Content-Type': 'application/octet-stream' } });
    await put.arrayBuffer();
    assert.equal(put.status, 201);
  }
  const manifest = imageManifest(config, layers);
  await client.pushManifest(repo, tag, manifest);
  return { manifest, layers };
}

/**
 * CNCF distribution (Debian's docker-registry) as an anonymous upstream: what Docker Hub, GHCR and
 * most mirrors run. Names get library/ the way Docker Hub wants them.
 */
describe('proxy upstream: distribution without auth', { skip: distributionAvailable() ? false : 'no /usr/bin/docker-registry' }, () => {
  let scratch: ScratchDir;
  let registry: Target;
  let upstream: Upstream;
  let image: { manifest: Blob; layers: Blob[] };

  before(async () => {
    scratch = await makeScratchDir('proxy-distribution');
    registry = await startDistribution(scratch.path);
    image = await pushImage(registry.url, 'library/nginx', 'stable');
    upstream = makeUpstream({ urls: [registry.url], libraryPrefix: true }).upstream;
  });
  after(async () => {
    upstream?.close();
    await registry?.stop();
    await scratch?.remove();
  });

  it('maps a single name to library/ and pulls the manifest by tag and digest', async () => {
    const remote = upstream.remoteName('nginx');
    assert.equal(remote, 'library/nginx');
    assert.equal(upstream.remoteName('bitnami/redis'), 'bitnami/redis');
    const head = await upstream.headManifest(remote, 'stable', [OCI_MANIFEST]);
    assert.deepEqual(head, { digest: image.manifest.digest, mediaType: OCI_MANIFEST, size: image.manifest.size });
    const manifest = await upstream.getManifest(remote, image.manifest.digest, [OCI_MANIFEST]);
    assert.deepEqual(manifest.bytes, image.manifest.data);
    assert.equal(await upstream.headManifest(remote, 'missing', [OCI_MANIFEST]), undefined);
  });

  it('streams a layer with its size', async () => {
    const layer = image.layers[0] as Blob;
    const blob = await upstream.openBlob('library/nginx', layer.digest);
    assert.equal(blob.size, layer.size);
    assert.equal(sha256(await collect(blob.stream)), layer.digest);
  });

  it('reports an unknown digest as UpstreamNotFoundError', async () => {
    await assert.rejects(upstream.getManifest('library/nginx', sha256('never pushed'), [OCI_MANIFEST]), UpstreamNotFoundError);
    await assert.rejects(upstream.openBlob('library/nginx', sha256('never pushed')), UpstreamNotFoundError);
  });
});
