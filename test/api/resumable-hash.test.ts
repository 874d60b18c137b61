import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Readable } from 'node:stream';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import type { ReadOptions } from '../../storage-drivers/blob/types.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { randomBlob, RegistryClient, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

/** A memory driver that counts reads of in-progress upload bytes (the digest's fallback path). */
class CountingDriver extends MemoryDriver {
  uploadReads = 0;
  override async reader(key: string, options?: ReadOptions): Promise<Readable> {
    if (key.startsWith('uploads/')) this.uploadReads++;
    return super.reader(key, options);
  }
}

describe('digests of uploads whose chunks land on different processes', () => {
  const driver = new CountingDriver();
  let store: EmbeddedStore;
  let a: TestRegistry;
  let b: TestRegistry;
  before(async () => {
    // Two apps over one storage and one metadata store: each has its own in-process hashes, as two
    // Berth processes behind a load balancer would.
    a = await startTestRegistry({
      config: { uploads: { resumableHashing: true } },
      driver: async () => driver,
      metadata: async (dir) => (store = new EmbeddedStore({ path: join(dir, 'metadata') })),
    });
    b = await startTestRegistry({ config: { uploads: { resumableHashing: true } }, driver: async () => driver, metadata: async () => store });
  });
  after(async () => {
    await b.app.close();
    await a.close();
  });

  async function alternate(withRange: boolean): Promise<void> {
    const blob = randomBlob(5 * 1024 * 1024 + 3);
    const clients = [new RegistryClient(a.url), new RegistryClient(b.url)];
    const post = await clients[0]!.fetch('/v2/hash/app/blobs/uploads/', { method: 'POST' });
    const location = post.headers.get('location') as string;
    const chunk = 1024 * 1024;
    for (let off = 0, i = 1; off < blob.size; off += chunk, i++) {
      const part = blob.data.subarray(off, Math.min(off + chunk, blob.size));
      const headers: Record<string, string> = withRange ? { 'Content-Range': `${off}-${off + part.length - 1}` } : {};
      const res = await clients[i % 2]!.fetch(location, { method: 'PATCH', body: part, headers });
      assert.equal(res.status, 202);
    }
    const put = await clients[0]!.fetch(`${location}?digest=${blob.digest}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const get = await clients[1]!.fetch(`/v2/hash/app/blobs/${blob.digest}`);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), blob.digest);
  }

  it('continues the saved hash state for Content-Range chunks: nothing is read back', async () => {
    driver.uploadReads = 0;
    await alternate(true);
    assert.equal(driver.uploadReads, 0);
  });

  it('falls back to reading the bytes once for streamed chunks, and still verifies', async () => {
    driver.uploadReads = 0;
    await alternate(false);
    assert.equal(driver.uploadReads, 1);
  });
});
