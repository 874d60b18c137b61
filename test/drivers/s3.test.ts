// The shared blob-driver contract against the S3 driver over real HTTP (s3rver), with a second driver
// instance as the "other process", no key prefix, and every raw object in the bucket checked for leftovers.
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import { runBlobDriverContract } from '../contract/blob-driver.contract.js';
import { startS3rver } from '../helpers/s3rver.js';

runBlobDriverContract('s3 (s3rver)', async () => {
  const server = await startS3rver();
  const driver = createS3Driver(server.config());
  const peer = createS3Driver(server.config());
  return {
    driver,
    peer,
    async rawKeys() {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const out = await driver.client.send(new ListObjectsV2Command({ Bucket: server.bucket, ContinuationToken: token }));
        for (const object of out.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
        token = out.IsTruncated === true ? out.NextContinuationToken : undefined;
      } while (token !== undefined);
      return keys;
    },
    async cleanup() {
      await driver.close();
      await peer.close();
      await server.stop();
    },
  };
});
