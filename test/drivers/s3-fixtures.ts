// Data and raw-bucket helpers shared by the S3 driver tests.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';

export const MiB = 1024 * 1024;

const BLOCK = randomBytes(MiB + 7);

/** `length` bytes of the test pattern starting at `offset` (stamped so misplaced chunks change digests). */
export function patternAt(offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const from = (offset + filled) % BLOCK.length;
    filled += BLOCK.copy(out, filled, from, Math.min(BLOCK.length, from + length - filled));
  }
  if (length >= 8) out.writeBigUInt64LE(BigInt(offset), 0);
  return out;
}

/** A stream of `length` pattern bytes from `offset` in 64 KiB chunks, never held whole in memory. */
export function patternStream(offset: number, length: number, hash?: ReturnType<typeof createHash>): Readable {
  let produced = 0;
  return new Readable({
    read() {
      if (produced === length) {
        this.push(null);
        return;
      }
      const size = Math.min(64 * 1024 + 3, length - produced);
      const chunk = patternAt(offset + produced, size);
      produced += size;
      hash?.update(chunk);
      this.push(chunk);
    },
  });
}

export async function sha256Of(stream: Readable): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    size += buf.length;
    hash.update(buf);
  }
  return { digest: hash.digest('hex'), size };
}

/** Every object in the bucket, internal ones included. */
export async function rawKeys(client: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const object of out.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
    token = out.IsTruncated === true ? out.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys.sort();
}

/** The sha256 of the streams' bytes one after another. */
export async function digestOfStreams(streams: Readable[]): Promise<string> {
  const hash = createHash('sha256');
  for (const stream of streams) for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
