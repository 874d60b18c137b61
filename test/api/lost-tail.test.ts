// Chunks are not fsynced before their 202 (one fsync at the finishing PUT): after an OS crash an
// upload's file may hold fewer bytes than its session records. The upload resumes where the bytes
// really end, and no digest is ever taken over bytes that are not there.
import assert from 'node:assert/strict';
import { stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { randomBlob, RegistryClient, sha256, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const CHUNK = 256 * 1024;

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`;
}

describe('an upload whose file lost its unsynced tail (filesystem + embedded)', () => {
  let driver: FilesystemDriver;
  let store: EmbeddedStore;
  let first: TestRegistry;
  let restarted: TestRegistry;
  before(async () => {
    // Two apps over one storage and metadata store: the second stands for the process that runs after
    // the crash, with none of the first one's in-memory hashes.
    first = await startTestRegistry({
      config: { uploads: { resumableHashing: true } },
      driver: async (dir) => (driver = new FilesystemDriver({ root: join(dir, 'blobs') })),
      metadata: async (dir) => (store = new EmbeddedStore({ path: join(dir, 'metadata') })),
    });
    restarted = await startTestRegistry({ config: { uploads: { resumableHashing: true } }, driver: async () => driver, metadata: async () => store });
  });
  after(async () => {
    await restarted?.app.close();
    await first?.close();
  });

  /** Sends `b`'s first `upTo` bytes in Content-Range chunks to the first app; returns the upload's location and id. */
  async function chunksUpTo(repo: string, b: Blob, upTo: number): Promise<{ location: string; id: string }> {
    const client = new RegistryClient(first.url);
    const post = await client.fetch(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    let location = post.headers.get('location') as string;
    for (let off = 0; off < upTo; off += CHUNK) {
      const part = b.data.subarray(off, Math.min(off + CHUNK, upTo));
      const res = await client.fetch(location, {
        method: 'PATCH',
        body: part,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${off}-${off + part.length - 1}` },
      });
      assert.equal(res.status, 202, await res.text());
      location = res.headers.get('location') as string;
    }
    return { location, id: post.headers.get('docker-upload-uuid') as string };
  }

  /** What an OS crash leaves of a file written without fsync: a prefix of it. */
  async function loseTail(id: string, keep: number): Promise<void> {
    const data = join(driver.inProgressDir(`uploads/${id}/data`), '@data');
    assert.ok((await stat(data)).size > keep, 'the file held more than is kept');
    await truncate(data, keep);
  }

  it('reports where the bytes really end, refuses a chunk after them, and finishes once the rest is sent again', async () => {
    const b = randomBlob(4 * CHUNK + 1000);
    const { location, id } = await chunksUpTo('tail/app', b, 3 * CHUNK);
    const session = await store.getUpload(id);
    assert.equal(session?.offset, 3 * CHUNK);
    assert.ok(session?.hashState !== undefined, 'the session carries a hash state over all its bytes');
    const kept = CHUNK + 12345;
    await loseTail(id, kept);

    const client = new RegistryClient(restarted.url);
    const status = await client.fetch(location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${kept - 1}`, 'the status tells the client where to resume');

    const stale = await client.fetch(location, {
      method: 'PATCH',
      body: b.data.subarray(3 * CHUNK, 4 * CHUNK),
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${3 * CHUNK}-${4 * CHUNK - 1}` },
    });
    assert.equal(stale.status, 416, 'a chunk after the recorded offset no longer fits');
    assert.equal(stale.headers.get('range'), `0-${kept - 1}`);
    const recorded = await store.getUpload(id);
    assert.equal(recorded?.offset, kept, 'the session now records the true offset');
    assert.equal(recorded?.hashState, undefined, 'and no hash state over bytes that are gone');

    const rest = await client.fetch(withDigest(location, b.digest), {
      method: 'PUT',
      body: b.data.subarray(kept),
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${kept}-${b.size - 1}` },
    });
    assert.equal(rest.status, 201, await rest.text());
    const get = await client.fetch(`/v2/tail/app/blobs/${b.digest}`);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), b.digest);
  });

  it('refuses to finish with the digest of bytes that are no longer there', async () => {
    const b = randomBlob(3 * CHUNK);
    const { location, id } = await chunksUpTo('tail/lost', b, b.size);
    await loseTail(id, 2 * CHUNK);
    const client = new RegistryClient(restarted.url);
    const put = await client.fetch(withDigest(location, b.digest), { method: 'PUT' });
    assert.equal(put.status, 400, await put.text());
    const head = await client.fetch(`/v2/tail/lost/blobs/${b.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 404, 'no blob from lost bytes');
  });
});
