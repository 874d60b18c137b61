import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { OciLayout } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeo } from '../helpers/clients.js';

describe('skopeo end to end (filesystem + embedded)', () => {
  let reg: TestRegistry;
  let work: string;
  let host: string;
  before(async () => {
    reg = await startTestRegistry({ driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }) });
    host = reg.url.replace('http://', '');
    work = await mkdtemp(join(tmpdir(), 'berth-skopeo-'));
  });
  after(async () => {
    await reg?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('copies a multi-layer image in and back out with the same digests', async () => {
    const layout = await new OciLayout(join(work, 'src1')).init();
    const image = await layout.addImage([200_000, 50_000, 3]);
    await layout.tag(image, 'v1');
    await skopeo('copy', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout.dir}:v1`, `docker://${host}/e2e/app:v1`);
    const inspect = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${host}/e2e/app:v1`)) as { Digest: string; Layers: string[] };
    assert.equal(inspect.Digest, image.digest);
    assert.equal(inspect.Layers.length, 3);
    const out = join(work, 'out1');
    await skopeo('copy', '--src-tls-verify=false', '--preserve-digests', `docker://${host}/e2e/app:v1`, `oci:${out}:v1`);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]?.digest, image.digest);
    const manifest = await readFile(join(out, 'blobs', 'sha256', image.digest.slice(7)));
    const original = await readFile(join(layout.dir, 'blobs', 'sha256', image.digest.slice(7)));
    assert.deepEqual(manifest, original);
  });

  it('copies a two-platform index with --all, lists tags and deletes', async () => {
    const layout = await new OciLayout(join(work, 'src2')).init();
    const amd = await layout.addImage([10_000], { os: 'linux', architecture: 'amd64' });
    const arm = await layout.addImage([12_000], { os: 'linux', architecture: 'arm64' });
    const index = await layout.addIndex([amd, arm]);
    await layout.tag(index, 'multi');
    await skopeo('copy', '--all', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout.dir}:multi`, `docker://${host}/e2e/multi:latest`);
    await skopeo('copy', '--all', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout.dir}:multi`, `docker://${host}/e2e/multi:stable`);
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${host}/e2e/multi:latest`);
    assert.equal(JSON.parse(raw).manifests.length, 2);
    const arm64 = JSON.parse(await skopeo('inspect', '--override-arch', 'arm64', '--tls-verify=false', `docker://${host}/e2e/multi:latest`)) as {
      Digest: string;
      Architecture: string;
    };
    assert.equal(arm64.Architecture, 'arm64');
    const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', `docker://${host}/e2e/multi`)) as { Tags: string[] };
    assert.deepEqual(tags.Tags, ['latest', 'stable']);
    const out = join(work, 'out2');
    await skopeo('copy', '--all', '--src-tls-verify=false', '--preserve-digests', `docker://${host}/e2e/multi:latest`, `oci:${out}:m`);
    const outIndex = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(outIndex.manifests[0]?.digest, index.digest);
    await skopeo('delete', '--tls-verify=false', `docker://${host}/e2e/multi@${index.digest}`);
    const after = JSON.parse(await skopeo('list-tags', '--tls-verify=false', `docker://${host}/e2e/multi`)) as { Tags: string[] };
    assert.deepEqual(after.Tags, []);
  });

  it('copies an artifact whose subject is an image, visible through the referrers API', async () => {
    const layout = await new OciLayout(join(work, 'src3')).init();
    const image = await layout.addImage([1_000]);
    await layout.tag(image, 'img');
    await skopeo('copy', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout.dir}:img`, `docker://${host}/e2e/art:img`);
    const empty = await layout.addBlob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
    const payload = await layout.addBlob(Buffer.from('a signature'), 'application/vnd.example.signature');
    const artifact = await layout.addBlob(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          artifactType: 'application/vnd.example.signature',
          config: empty,
          layers: [payload],
          subject: { mediaType: image.mediaType, digest: image.digest, size: image.size },
        }),
      ),
      'application/vnd.oci.image.manifest.v1+json',
    );
    await layout.tag(artifact, 'sig');
    await skopeo('copy', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout.dir}:sig`, `docker://${host}/e2e/art:sig`);
    const res = await fetch(`${reg.url}/v2/e2e/art/referrers/${image.digest}`);
    const body = (await res.json()) as { manifests: Array<{ digest: string; artifactType: string }> };
    assert.deepEqual(
      body.manifests.map((m) => [m.digest, m.artifactType]),
      [[artifact.digest, 'application/vnd.example.signature']],
    );
  });
});
