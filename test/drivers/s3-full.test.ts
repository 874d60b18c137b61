import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { toOciError } from '../../server/errors.js';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import { StorageFullError, type BlobDriver } from '../../storage-drivers/blob/types.js';

/**
 * A MinIO-compatible endpoint whose drives are full (or whose bucket is over quota) answers every
 * write with MinIO's error; s3rver cannot, so a small HTTP server speaks the same wire format.
 */
describe('S3 storage that is out of space (MinIO errors)', () => {
  let server: Server;
  let endpoint = '';
  let requests = 0;
  let answer = {
    status: 507,
    code: 'XMinioStorageFull',
    message: 'Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed.',
  };

  before(async () => {
    server = createServer((req, res) => {
      requests++;
      req.resume();
      // Reads work on a full store; here there is nothing to read, and listings are empty.
      const url = new URL(req.url ?? '/', 'http://x');
      const listing = req.method === 'GET' && (url.searchParams.has('uploads') || url.searchParams.has('list-type'));
      const reply = req.method === 'GET' || req.method === 'HEAD' ? { status: 404, code: 'NoSuchKey', message: 'The specified key does not exist.' } : answer;
      req.once('end', () => {
        if (listing) {
          const root = url.searchParams.has('uploads') ? 'ListMultipartUploadsResult' : 'ListBucketResult';
          res.writeHead(200, { 'Content-Type': 'application/xml' });
          res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<${root}><Bucket>full</Bucket><IsTruncated>false</IsTruncated></${root}>`);
          return;
        }
        res.writeHead(reply.status, { 'Content-Type': 'application/xml' });
        res.end(
          req.method === 'HEAD'
            ? undefined
            : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${reply.code}</Code><Message>${reply.message}</Message><Resource>${req.url}</Resource><RequestId>1</RequestId></Error>`,
        );
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((done) => server.close(() => done())));

  const driver = (): BlobDriver =>
    createS3Driver({ bucket: 'full', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, maxAttempts: 3 });

  it('a put and a writer fail with StorageFullError, at once (no retries), mapped to 507 naming the store', async () => {
    const d = driver();
    requests = 0;
    await assert.rejects(d.put('manifests/x', Buffer.from('{}')), (err: unknown) => {
      assert.ok(err instanceof StorageFullError, String(err));
      assert.match(err.message, /^S3 storage is out of space: PutObject full\/.*XMinioStorageFull \(HTTP 507\)/);
      const oci = toOciError(err);
      assert.equal(oci.status, 507);
      assert.equal(oci.code, 'UNAVAILABLE');
      return true;
    });
    assert.equal(requests, 1, 'a full store was asked again');
    const writer = await d.writer('uploads/u1/data', {});
    await assert.rejects(
      (async () => {
        await writer.write(Readable.from([Buffer.alloc(1024)]));
        await writer.commit();
      })(),
      StorageFullError,
    );
    await d.close();
  });

  it('a bucket over its quota is out of space too', async () => {
    answer = { status: 400, code: 'XMinioAdminBucketQuotaExceeded', message: 'Bucket quota exceeded' };
    const d = driver();
    await assert.rejects(d.put('manifests/y', Buffer.from('{}')), StorageFullError);
    await d.close();
  });
});
