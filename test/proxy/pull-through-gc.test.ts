import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { blobKey } from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { BlobNotFoundError } from '../../storage-drivers/blob/types.js';
import type { BerthConfigInput } from '../../server/config.js';
import { OCI_MANIFEST, RegistryClient, randomBlob, sha256, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

/**
 * Garbage collection of a proxy repository's blobs (blob-cache.ts queues every filled blob): one
 * pulled by digest with no cached manifest referencing it goes, a layer of a cached manifest stays.
 * Passes run on demand with no delay or quarantine and an injected clock, as in test/api/gc-suite.ts.
 */

async function stored(reg: TestRegistry, digest: string): Promise<boolean> {
  try {
    await reg.driver.stat(blobKey(parseDigest(digest)));
    return true;
  } catch (err) {
    if (err instanceof BlobNotFoundError) return false;
    throw err;
  }
}

describe('proxy namespaces: garbage collection of filled blobs', () => {
  const clock = { now: Date.now() };
  let upstream: TestRegistry;
  let proxy: TestRegistry;
  let client: RegistryClient;
  let image: { manifest: Blob; config: Blob; layers: Blob[] };
  const orphan = randomBlob(70_000);

  before(async () => {
    upstream = await startTestRegistry();
    const pusher = new RegistryClient(upstream.url);
    image = await pusher.pushImage('team/app', 'v1', [50_000]);
    await pusher.pushBlob('team/app', orphan);
    const config = {
      proxy: { upstreams: [{ namespace: 'hub', urls: [upstream.url], timeoutSeconds: 2 }] },
      gc: { enabled: false, delaySeconds: 0, quarantineSeconds: 0 },
    } as BerthConfigInput;
    proxy = await startTestRegistry({ config, deps: { now: () => clock.now } });
    client = new RegistryClient(proxy.url);
  });
  after(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  /** The fill links and queues its blob after the response: waits (bounded) until the queue holds `count` items. */
  async function queued(count: number): Promise<void> {
    for (let i = 0; i < 400; i++) {
      if ((await proxy.metadata.gc.queueSize(clock.now)).queued >= count) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.fail(`the filled blobs were not queued for garbage collection: ${JSON.stringify(await proxy.metadata.gc.queueSize(clock.now))}`);
  }

  it('deletes a blob pulled by digest that no manifest references, keeps the layer of a cached manifest', async () => {
    const manifest = await client.fetch('/v2/hub/team/app/manifests/v1', { headers: { accept: OCI_MANIFEST } });
    assert.equal(manifest.status, 200);
    await manifest.arrayBuffer();
    const layer = image.layers[0] as Blob;
    for (const b of [layer, orphan]) {
      const res = await client.fetch(`/v2/hub/team/app/blobs/${b.digest}`);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), b.digest);
    }
    await queued(2);
    assert.ok(await proxy.metadata.getBlobLink('hub/team/app', orphan.digest), 'the orphan was linked once filled');
    assert.equal(await stored(proxy, orphan.digest), true);

    clock.now += 1000;
    const summary = await proxy.app.gc.pass();
    assert.equal(summary.errors, 0);
    assert.equal(await stored(proxy, orphan.digest), false, 'the blob no manifest references is gone');
    assert.equal(await proxy.metadata.getBlobLink('hub/team/app', orphan.digest), undefined);
    assert.equal(await stored(proxy, layer.digest), true, "the cached manifest's layer stays");
    assert.ok(await proxy.metadata.getBlobLink('hub/team/app', layer.digest));
    assert.equal(await stored(proxy, image.manifest.digest), true);
  });
});
