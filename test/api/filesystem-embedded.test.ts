import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { randomBlob, RegistryClient, sha256 } from '../helpers/oci.js';
import { usePair } from '../helpers/matrix.js';
import { startTestRegistry } from '../helpers/registry.js';
import { runApiSuite } from './api-suite.js';
import { runBadInputSuite } from './bad-input-suite.js';
import { runGcSuite } from './gc-suite.js';

const env = usePair('filesystem', 'embedded');
runApiSuite(env.pair.title, env.options);
runBadInputSuite(env.pair.title, env.options);
runGcSuite(env.pair.title, env.options);

describe('filesystem blob sending', () => {
  it('survives clients that leave mid-download and keeps serving', async () => {
    const reg = await startTestRegistry({ driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }) });
    try {
      const c = new RegistryClient(reg.url);
      const b = randomBlob(24 * 1024 * 1024);
      await c.pushBlob('send/app', b);
      for (let i = 0; i < 5; i++) {
        const abort = new AbortController();
        const res = await fetch(`${reg.url}/v2/send/app/blobs/${b.digest}`, { signal: abort.signal });
        const reader = res.body!.getReader();
        await reader.read();
        abort.abort();
        await reader.cancel().catch(() => undefined);
      }
      const whole = await c.fetch(`/v2/send/app/blobs/${b.digest}`);
      assert.equal(whole.headers.get('docker-distribution-api-version'), 'registry/2.0');
      assert.equal(sha256(Buffer.from(await whole.arrayBuffer())), b.digest);
      const part = await c.fetch(`/v2/send/app/blobs/${b.digest}`, { headers: { Range: 'bytes=1048570-3145735' } });
      assert.equal(part.status, 206);
      assert.deepEqual(Buffer.from(await part.arrayBuffer()), b.data.subarray(1048570, 3145736));
    } finally {
      await reg.close();
    }
  });
});
