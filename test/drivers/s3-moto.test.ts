// The S3 driver against moto, a second S3 implementation: the shared contract, and deleteMany's
// per-key failures, which s3rver cannot produce (moto honours a bucket policy denying s3:DeleteObject).
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import { instrument } from '../../storage-drivers/blob/instrumented.js';
import { StorageUnavailableError } from '../../storage-drivers/blob/types.js';
import { runBlobDriverContract } from '../contract/blob-driver.contract.js';
import { startMoto, type MotoHandle } from '../helpers/moto.js';
import { rawKeys } from './s3-fixtures.js';

runBlobDriverContract('s3 (moto)', async () => {
  const moto = await startMoto();
  const bucket = await moto.createBucket();
  const driver = createS3Driver(moto.config(bucket, { prefix: 'berth' }));
  const peer = createS3Driver(moto.config(bucket, { prefix: 'berth' }));
  return {
    driver,
    peer,
    rawKeys: () => rawKeys(driver.client, bucket),
    async cleanup() {
      await driver.close();
      await peer.close();
      await moto.stop();
    },
  };
});

describe('S3 deleteMany against moto', () => {
  let moto: MotoHandle;
  before(async () => {
    moto = await startMoto();
  });
  after(async () => {
    await moto.stop();
  });

  for (const checksum of ['when_required', 'when_supported'] as const) {
    it(`reports keys the store refuses in failed and deletes the rest (checksum ${checksum})`, async () => {
      const bucket = await moto.createBucket();
      const driver = instrument(createS3Driver(moto.config(bucket, { prefix: 'p', checksum })), () => undefined);
      try {
        for (const key of ['blobs/a', 'locked/b', 'blobs/c', 'locked/d']) await driver.put(key, Buffer.from(key));
        await moto.denyDeletes(bucket, 'p/locked/');
        const result = await driver.deleteMany(['blobs/a', 'locked/b', 'blobs/missing', 'blobs/c', 'locked/d']);
        assert.deepEqual(result.deleted, ['blobs/a', 'blobs/missing', 'blobs/c']);
        assert.deepEqual(
          result.failed.map((f) => f.key),
          ['locked/b', 'locked/d'],
        );
        for (const { key, error } of result.failed) {
          assert.ok(error instanceof StorageUnavailableError, String(error));
          assert.match(error.message, new RegExp(`^S3 DeleteObjects ${bucket}/p/${key} failed: AccessDenied`));
        }
        assert.deepEqual(await driver.get('locked/b'), Buffer.from('locked/b'), 'a refused key keeps its object');
        const left: string[] = [];
        for await (const key of driver.list('blobs')) left.push(key);
        assert.deepEqual(left, []);
      } finally {
        await driver.close();
      }
    });
  }

  it('throws StorageUnavailableError when the request itself fails (no such bucket)', async () => {
    const driver = instrument(createS3Driver(moto.config('no-such-bucket')), () => undefined);
    try {
      await assert.rejects(driver.deleteMany(['a', 'b']), (err: unknown) => {
        assert.ok(err instanceof StorageUnavailableError, String(err));
        assert.match(err.message, /DeleteObjects 2 keys failed: NoSuchBucket/);
        return true;
      });
    } finally {
      await driver.close();
    }
  });

  it('throws StorageUnavailableError when the store is unreachable', async () => {
    // A port that was free a moment ago and has nothing listening now.
    const probe = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => probe.once('listening', resolve));
    const address = probe.address();
    await new Promise((resolve) => probe.close(resolve));
    assert.ok(address !== null && typeof address === 'object');
    const driver = instrument(createS3Driver({ ...moto.config('any'), endpoint: `http://127.0.0.1:${address.port}`, maxAttempts: 1 }), () => undefined);
    try {
      await assert.rejects(driver.deleteMany(['a']), StorageUnavailableError);
    } finally {
      await driver.close();
    }
  });
});
