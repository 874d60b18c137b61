import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry } from '../helpers/registry.js';

async function uploadKeys(list: AsyncIterable<string>): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of list) keys.push(k);
  return keys;
}

describe('upload expiry', () => {
  it('forgets an idle upload and removes its bytes in the background', async () => {
    const reg = await startTestRegistry({
      config: { uploads: { idleTimeoutSeconds: 1, sweepIntervalSeconds: 1 } },
      driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }),
    });
    try {
      const c = new RegistryClient(reg.url);
      const post = await c.fetch('/v2/idle/app/blobs/uploads/', { method: 'POST' });
      const location = post.headers.get('location') as string;
      const id = post.headers.get('docker-upload-uuid') as string;
      assert.equal((await c.fetch(location, { method: 'PATCH', body: Buffer.alloc(1000, 7) })).status, 202);
      assert.ok(await reg.metadata.getUpload(id));
      // The sweep runs every second; give it a bounded number of rounds.
      const deadline = Date.now() + 15_000;
      while ((await reg.metadata.getUpload(id)) !== undefined) {
        assert.ok(Date.now() < deadline, 'the idle upload was never swept');
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal((await c.fetch(location)).status, 404);
      const fs = reg.driver as FilesystemDriver;
      assert.deepEqual(await uploadKeys(fs.list('uploads')), []);
      const raw = await import('node:fs/promises').then((m) => m.readdir(join(fs.root, '@inprogress'), { recursive: true }).catch(() => [] as string[]));
      assert.deepEqual(
        raw.filter((f) => String(f).includes(id)),
        [],
      );
    } finally {
      await reg.close();
    }
  });
});
