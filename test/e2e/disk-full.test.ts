import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, open, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { StorageFullError } from '../../storage-drivers/blob/types.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { randomBlob, RegistryClient, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const VOLUME_MIB = 16;

/** A real, small filesystem: a tmpfs of `sizeMiB` mounted at `dir` (needs root, as in CI). */
async function mountTmpfs(dir: string, sizeMiB: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir]);
  } catch (err) {
    throw new Error(`these tests need a real full filesystem: mounting a ${sizeMiB} MiB tmpfs at ${dir} failed (run them as root): ${(err as Error).message}`);
  }
}

async function usedBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

/** Writes zeros to `path` until the filesystem refuses with ENOSPC. */
async function fillUp(path: string): Promise<void> {
  const handle = await open(path, 'w');
  const chunk = Buffer.alloc(256 * 1024);
  try {
    for (;;) await handle.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await handle.close();
  }
}

interface ErrorBody {
  errors: Array<{ code: string; message: string }>;
}

describe(`a full disk under filesystem storage (a ${VOLUME_MIB} MiB tmpfs)`, () => {
  let scratch: ScratchDir;
  let volume = '';
  let storageRoot = '';
  let registry: TestRegistry;
  let mounted = false;

  before(async () => {
    scratch = await makeScratchDir('disk-full');
    volume = join(scratch.path, 'volume');
    await mountTmpfs(volume, VOLUME_MIB);
    mounted = true;
    storageRoot = join(volume, 'storage');
    registry = await startTestRegistry({
      driver: async () => new FilesystemDriver({ root: storageRoot }),
      metadata: async () => new EmbeddedStore({ path: join(scratch.path, 'metadata') }),
    });
  });
  after(async () => {
    await registry?.app.close();
    await registry?.metadata.close();
    if (mounted) await run('umount', [volume]);
    await scratch?.remove();
  });

  /** What a person is told: which storage, that it is out of space, and what to do. */
  const fullMessage = () =>
    new RegExp(`^filesystem storage at ${storageRoot.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is out of space \\(ENOSPC\\): .*free space`);

  it('answers 507 naming the storage, keeps reads working, frees the failed push, and a smaller push then succeeds', async () => {
    const c = new RegistryClient(registry.url);
    const image = await c.pushImage('full/app', 'v1', [MiB]);
    const baseline = await usedBytes(volume);

    // A monolithic push larger than the volume.
    const huge = randomBlob((VOLUME_MIB + 4) * MiB);
    const push = await c.fetch(`/v2/full/app/blobs/uploads/?digest=${huge.digest}`, {
      method: 'POST',
      body: huge.data,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(push.status, 507);
    const body = (await push.json()) as ErrorBody;
    assert.equal(body.errors[0]?.code, 'UNAVAILABLE');
    assert.match(body.errors[0]?.message ?? '', fullMessage());
    // The failed write's bytes are gone again (give or take a block of directory entries).
    assert.ok((await usedBytes(volume)) - baseline < 256 * 1024, `still ${(await usedBytes(volume)) - baseline} bytes more than before the push`);

    // A chunked upload: the chunk that does not fit fails with 507, and the upload ends with all its
    // bytes freed, so what it held does not keep other pushes failing until it expires.
    const beforeChunked = await usedBytes(volume);
    const post = await c.fetch('/v2/full/app/blobs/uploads/', { method: 'POST' });
    const location = post.headers.get('location') as string;
    const first = randomBlob(4 * MiB);
    const patch1 = await c.fetch(location, {
      method: 'PATCH',
      body: first.data,
      headers: { 'Content-Range': `0-${first.size - 1}`, 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(patch1.status, 202, await patch1.text());
    const afterFirst = await usedBytes(volume);
    const second = randomBlob(VOLUME_MIB * MiB);
    const patch2 = await c.fetch(location, {
      method: 'PATCH',
      body: second.data,
      headers: { 'Content-Range': `${first.size}-${first.size + second.size - 1}`, 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(patch2.status, 507);
    assert.match(((await patch2.json()) as ErrorBody).errors[0]?.message ?? '', fullMessage());
    assert.ok(afterFirst - beforeChunked >= first.size, 'the first chunk was stored');
    assert.ok((await usedBytes(volume)) - beforeChunked < 256 * 1024, `the failed upload still holds ${(await usedBytes(volume)) - beforeChunked} bytes`);
    assert.equal((await c.fetch(location)).status, 404, 'the failed upload is ended');

    // Completely full (another tenant of the volume): reads still work, writes say why they fail.
    const filler = join(volume, 'filler');
    await fillUp(filler);
    try {
      const layer = await c.fetch(`/v2/full/app/blobs/${image.layers[0]!.digest}`);
      assert.equal(layer.status, 200);
      assert.equal(sha256(Buffer.from(await layer.arrayBuffer())), image.layers[0]!.digest);
      assert.equal((await c.fetch(`/v2/full/app/blobs/${image.config.digest}`, { method: 'HEAD' })).status, 200);
      const manifest = await c.fetch('/v2/full/app/manifests/v1', { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(manifest.status, 200);
      assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest);

      const small = randomBlob(64 * 1024);
      const blobPush = await c.fetch(`/v2/full/app/blobs/uploads/?digest=${small.digest}`, {
        method: 'POST',
        body: small.data,
        headers: { 'Content-Type': 'application/octet-stream' },
      });
      assert.equal(blobPush.status, 507);
      assert.match(((await blobPush.json()) as ErrorBody).errors[0]?.message ?? '', fullMessage());
      const retag = await c.fetch('/v2/full/app/manifests/v2', {
        method: 'PUT',
        body: image.manifest.data,
        headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(retag.status, 507);
      assert.match(((await retag.json()) as ErrorBody).errors[0]?.message ?? '', fullMessage());
    } finally {
      await rm(filler);
    }

    // Space is back: a push that fits succeeds.
    const fits = await c.pushImage('full/app', 'v3', [2 * MiB]);
    const got = await c.fetch(`/v2/full/app/manifests/v3`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(got.headers.get('docker-content-digest'), fits.manifest.digest);
  });

  it('the filesystem writer gives back what a write that ran out of space wrote, and says so with a typed error', async () => {
    const driver = new FilesystemDriver({ root: join(volume, 'direct') });
    const writer = await driver.writer('uploads/direct/data', {});
    await writer.write(Readable.from([randomBlob(MiB).data]));
    const before = await usedBytes(volume);
    await assert.rejects(writer.write(Readable.from([randomBlob(VOLUME_MIB * MiB).data])), (err: unknown) => {
      assert.ok(err instanceof StorageFullError, String(err));
      assert.match(err.message, /^filesystem storage at .*\/direct is out of space \(ENOSPC\)$/);
      return true;
    });
    assert.equal(writer.size, MiB);
    assert.ok((await usedBytes(volume)) - before < 64 * 1024);
    await writer.cancel();
  });
});

describe('a full disk under the embedded metadata store (a 4 MiB tmpfs)', () => {
  it('answers 507 naming the metadata store, keeps reads working, and pushes again once space is back', async () => {
    const scratch = await makeScratchDir('metadata-full');
    const volume = join(scratch.path, 'volume');
    await mountTmpfs(volume, 4);
    const metadataPath = join(volume, 'metadata');
    const registry = await startTestRegistry({
      driver: async () => new FilesystemDriver({ root: join(scratch.path, 'storage') }),
      metadata: async () => new EmbeddedStore({ path: metadataPath }),
    });
    try {
      const c = new RegistryClient(registry.url);
      const image = await c.pushImage('meta/app', 'v1', [1024]);
      const filler = join(volume, 'filler');
      await fillUp(filler);
      const b = randomBlob(1024);
      const push = await c.fetch(`/v2/meta/app/blobs/uploads/?digest=${b.digest}`, {
        method: 'POST',
        body: b.data,
        headers: { 'Content-Type': 'application/octet-stream' },
      });
      assert.equal(push.status, 507);
      const error = ((await push.json()) as ErrorBody).errors[0];
      assert.equal(error?.code, 'UNAVAILABLE');
      assert.match(error?.message ?? '', new RegExp(`^the embedded metadata store at ${metadataPath} is out of space \\(ENOSPC\\): .*free space`));
      const manifest = await c.fetch('/v2/meta/app/manifests/v1', { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest);
      assert.equal((await c.fetch(`/v2/meta/app/blobs/${image.layers[0]!.digest}`, { method: 'HEAD' })).status, 200);
      await rm(filler);
      await c.pushBlob('meta/app', b);
      assert.equal((await c.fetch(`/v2/meta/app/blobs/${b.digest}`, { method: 'HEAD' })).status, 200);
    } finally {
      await registry.app.close();
      await registry.metadata.close();
      await run('umount', [volume]);
      await scratch.remove();
    }
  });
});
