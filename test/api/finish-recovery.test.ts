// A blob upload whose finishing PUT was cut short by a crash, at each step after the bytes were
// committed, completes when the client retries the PUT.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomBlob, RegistryClient, sha256, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const REPO = 'recover/app';

describe('finishing an upload after a crash mid-finish (memory + embedded)', () => {
  let reg: TestRegistry;
  let client: RegistryClient;
  before(async () => {
    reg = await startTestRegistry();
    client = new RegistryClient(reg.url);
  });
  after(async () => reg?.close());

  /** An upload holding all of `b`'s bytes, not yet finished; returns its id and location. */
  async function fullUpload(b: Blob): Promise<{ id: string; location: string }> {
    const post = await client.fetch(`/v2/${REPO}/blobs/uploads/`, { method: 'POST' });
    const res = await client.fetch(post.headers.get('location') as string, {
      method: 'PATCH',
      body: b.data,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${b.size - 1}` },
    });
    assert.equal(res.status, 202);
    return { id: res.headers.get('docker-upload-uuid') as string, location: res.headers.get('location') as string };
  }

  /** What a finish does to storage before it verifies the digest: commit the in-progress bytes. */
  async function commitLikeACrashedFinish(id: string): Promise<void> {
    const session = await reg.metadata.getUpload(id);
    assert.ok(session);
    const writer = await reg.driver.writer(`uploads/${id}/data`, {
      resume: { size: session.offset, ...(session.driverState ? { state: session.driverState } : {}) },
    });
    await writer.commit();
  }

  /** What a finish records once the digest checked out, before it moves the bytes. */
  async function markVerifiedLikeACrashedFinish(id: string, b: Blob): Promise<void> {
    const session = await reg.metadata.getUpload(id);
    assert.ok(session);
    assert.ok(
      await reg.metadata.updateUpload(id, session.revision, { ...session, revision: session.revision + 1, verified: { digest: b.digest, size: b.size } }),
    );
  }

  async function putAndRead(location: string, b: Blob): Promise<void> {
    const put = await client.fetch(`${location}?digest=${b.digest}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const get = await client.fetch(`/v2/${REPO}/blobs/${b.digest}`);
    assert.equal(get.status, 200);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), b.digest);
    const gone = await client.fetch(location);
    assert.equal(gone.status, 404);
  }

  it('completes when the crash came after the commit', async () => {
    // (the retried PUT hashes the committed bytes at the upload's own key: they are this session's)
    const b = randomBlob(70_000);
    const { id, location } = await fullUpload(b);
    await commitLikeACrashedFinish(id);
    await putAndRead(location, b);
  });

  it('completes when the crash came after the bytes reached their content address', async () => {
    const b = randomBlob(80_000);
    const { id, location } = await fullUpload(b);
    await commitLikeACrashedFinish(id);
    await markVerifiedLikeACrashedFinish(id, b);
    await reg.driver.move(`uploads/${id}/data`, `blobs/sha256/${b.digest.slice(7, 9)}/${b.digest.slice(7)}/data`);
    await putAndRead(location, b);
  });

  it('refuses a committed upload whose bytes do not match the digest, and discards it', async () => {
    const b = randomBlob(10_000);
    const { id, location } = await fullUpload(b);
    await commitLikeACrashedFinish(id);
    const wrong = sha256('other');
    const put = await client.fetch(`${location}?digest=${wrong}`, { method: 'PUT' });
    assert.equal(put.status, 400);
    assert.equal(((await put.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'DIGEST_INVALID');
    assert.equal((await client.fetch(location)).status, 404);
    assert.equal((await client.fetch(`/v2/${REPO}/blobs/${wrong}`)).status, 404);
  });

  it('never links a blob pushed elsewhere to an upload that merely names its digest', async () => {
    const b = randomBlob(5_000);
    await client.pushBlob('recover/other', b);
    const decoy = randomBlob(b.size);
    const { location } = await fullUpload(decoy);
    const put = await client.fetch(`${location}?digest=${b.digest}`, { method: 'PUT' });
    assert.equal(put.status, 400);
    assert.equal((await client.fetch(`/v2/${REPO}/blobs/${b.digest}`, { method: 'HEAD' })).status, 404);
  });
});
