import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { distributionAvailable, startDistribution, type Target } from '../../bench/targets.js';
import type { BerthConfigInput } from '../../server/config.js';
import { OCI_MANIFEST, RegistryClient, sha256, type Blob } from '../helpers/oci.js';
import { OciLayout } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { pushToDistribution } from './helpers.js';
import { skopeo } from '../helpers/clients.js';

function proxyTo(namespace: string, url: string, extra: Record<string, unknown> = {}): BerthConfigInput {
  return { proxy: { upstreams: [{ namespace, urls: [url], timeoutSeconds: 5, ...extra }] } } as BerthConfigInput;
}

describe('proxy namespaces: distribution upstream', { skip: distributionAvailable() ? false : 'no /usr/bin/docker-registry' }, () => {
  let scratch: ScratchDir;
  let registry: Target;
  let proxy: TestRegistry;
  let image: { manifest: Blob; layers: Blob[] };

  before(async () => {
    scratch = await makeScratchDir('proxy-wiring-distribution');
    registry = await startDistribution(scratch.path);
    image = await pushToDistribution(registry.url, 'library/nginx', 'stable');
    proxy = await startTestRegistry({ config: proxyTo('dockerhub', registry.url, { libraryPrefix: true }) });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
    await scratch?.remove();
  });

  it('pulls dockerhub/nginx:stable as library/nginx, manifest and layers verified', async () => {
    const client = new RegistryClient(proxy.url);
    const res = await client.fetch('/v2/dockerhub/nginx/manifests/stable', { headers: { accept: OCI_MANIFEST } });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), image.manifest.digest);
    for (const layer of image.layers) {
      const blob = await client.fetch(`/v2/dockerhub/nginx/blobs/${layer.digest}`);
      assert.equal(blob.status, 200);
      assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), layer.digest);
    }
  });
});

describe('proxy namespaces: skopeo through the cache', () => {
  let scratch: ScratchDir;
  let upstream: TestRegistry;
  let proxy: TestRegistry;

  before(async () => {
    scratch = await makeScratchDir('proxy-wiring-skopeo');
    upstream = await startTestRegistry();
    proxy = await startTestRegistry({ config: proxyTo('hub', upstream.url) });
  });
  after(async () => {
    await proxy?.close();
    await upstream?.close();
    await scratch?.remove();
  });

  it('copies one platform of an index out of the proxy; the other platform is never fetched', async () => {
    const layout = await new OciLayout(join(scratch.path, 'src')).init();
    const amd = await layout.addImage([40_000, 3000], { os: 'linux', architecture: 'amd64' });
    const arm = await layout.addImage([30_000], { os: 'linux', architecture: 'arm64' });
    const index = await layout.addIndex([amd, arm]);
    await layout.tag(index, 'multi');
    const upHost = upstream.url.replace('http://', '');
    await skopeo('copy', '--all', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout.dir}:multi`, `docker://${upHost}/team/multi:v1`);

    const out = join(scratch.path, 'out');
    const proxyHost = proxy.url.replace('http://', '');
    await skopeo('copy', '--override-arch', 'arm64', '--src-tls-verify=false', `docker://${proxyHost}/hub/team/multi:v1`, `oci:${out}:v1`);
    const copied = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(copied.manifests[0]?.digest, arm.digest);

    assert.ok(await proxy.metadata.getManifest('hub/team/multi', index.digest), 'the index is cached');
    assert.ok(await proxy.metadata.getManifest('hub/team/multi', arm.digest), 'the pulled platform is cached');
    assert.equal(await proxy.metadata.getManifest('hub/team/multi', amd.digest), undefined, 'the other platform was never fetched');
  });
});
