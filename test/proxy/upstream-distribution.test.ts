import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { distributionAvailable, startDistribution, type Target } from '../../bench/targets.js';
import { UpstreamNotFoundError } from '../../server/registry/proxy/errors.js';
import type { Upstream } from '../../server/registry/proxy/upstream.js';
import { OCI_MANIFEST, sha256, type Blob } from '../helpers/oci.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { collect, makeUpstream, pushToDistribution as pushImage } from './helpers.js';

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
