// S3 plumbing shared by the driver and its writers: the shared context, listing, batched deletes,
// and request bodies streamed from stored segments plus memory, with their own retries.
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type _Object,
  type S3Client,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import type { S3Keys } from './s3-keys.js';
import type { PartPlan, S3Limits } from './s3-parts.js';
import type { SegmentRecord } from './s3-upload-state.js';
import type { IoBufferPool } from './io-buffers.js';
import type { PartBuffer } from './s3-part-buffer.js';
import { isRetryable, unavailable } from './s3-errors.js';
import { withContentMd5 } from './s3-content-md5.js';

/** Everything a driver and its writers share. */
export interface S3Context {
  client: S3Client;
  /** Large buffers for upload parts and sends, reused and bounded by bytes. */
  buffers: IoBufferPool;
  bucket: string;
  keys: S3Keys;
  limits: S3Limits;
  /** Part plan for uploads started by this process (resumed uploads keep the plan they started with). */
  plan: PartPlan;
  maxAttempts: number;
  /**
   * checksum 'when_supported': the SDK sends CRC32 with every part, so uploads are created for CRC32
   * and completed with each part's checksum (S3 rejects a mix).
   */
  partChecksums: boolean;
  /** Keys per ListObjectsV2 page and per DeleteObjects call (S3's maximum is 1000). */
  batchSize: number;
  /**
   * checksum 'when_required': DeleteObjects carries Content-MD5, not the SDK's CRC32 header, which
   * stores older than the SDK's January 2025 checksum change refuse (see ./s3-content-md5.ts).
   */
  deleteContentMd5: boolean;
  /** Encryption and storage class for committed objects. */
  objectParams: ObjectParams;
  /** Temporary objects only get encryption: a cold storage class would bill them for weeks. */
  tempParams: ObjectParams;
}

export interface ObjectParams {
  ServerSideEncryption?: ServerSideEncryption;
  SSEKMSKeyId?: string;
  StorageClass?: StorageClass;
}

/** Every object under `prefix` (paginated); with a delimiter, only the direct children. */
export async function* listObjects(ctx: S3Context, prefix: string, delimiter?: string): AsyncGenerator<_Object> {
  let token: string | undefined;
  do {
    let out;
    try {
      out = await ctx.client.send(
        new ListObjectsV2Command({
          Bucket: ctx.bucket,
          Prefix: prefix,
          ContinuationToken: token,
          Delimiter: delimiter,
          MaxKeys: ctx.batchSize,
        }),
      );
    } catch (err) {
      throw unavailable('ListObjectsV2', prefix, err);
    }
    for (const object of out.Contents ?? []) {
      if (object.Key !== undefined) yield object;
    }
    token = out.IsTruncated === true ? out.NextContinuationToken : undefined;
  } while (token !== undefined);
}

/**
 * One DeleteObjects call (Quiet: the store lists only what it could not delete) for at most
 * `ctx.batchSize` keys; returns the keys it could not delete, each with its error. Throws when the
 * request as a whole fails, or when the store reports an error it does not tie to one of the keys
 * (then nothing tells which of them are gone).
 */
export async function deleteBatch(ctx: S3Context, s3Keys: readonly string[]): Promise<Map<string, Error>> {
  const failed = new Map<string, Error>();
  if (s3Keys.length === 0) return failed;
  const command = new DeleteObjectsCommand({ Bucket: ctx.bucket, Delete: { Objects: s3Keys.map((Key) => ({ Key })), Quiet: true } });
  let out;
  try {
    out = await ctx.client.send(ctx.deleteContentMd5 ? withContentMd5(command) : command);
  } catch (err) {
    throw unavailable('DeleteObjects', `${s3Keys.length} keys`, err);
  }
  const asked = new Set(s3Keys);
  for (const error of out.Errors ?? []) {
    const cause = { name: error.Code, message: error.Message };
    if (error.Key === undefined || !asked.has(error.Key)) throw unavailable('DeleteObjects', error.Key ?? `${s3Keys.length} keys`, cause);
    // Some stores report a key that was not there; it is deleted all the same.
    if (error.Code === 'NoSuchKey') continue;
    failed.set(error.Key, unavailable('DeleteObjects', `${ctx.bucket}/${error.Key}`, cause));
  }
  return failed;
}

/** Deletes keys in batches (DeleteObjects takes at most 1000). Missing keys are not an error; any other throws. */
export async function deleteKeys(ctx: S3Context, keys: Iterable<string>): Promise<void> {
  const batch: string[] = [];
  const flush = async (): Promise<void> => {
    const first = (await deleteBatch(ctx, batch.splice(0))).values().next();
    if (first.done !== true) throw first.value;
  };
  for (const key of keys) {
    batch.push(key);
    if (batch.length >= ctx.batchSize) await flush();
  }
  await flush();
}

/** Deletes every object under `prefix` (recursively, or only direct children with a delimiter). */
export async function deletePrefix(ctx: S3Context, prefix: string, delimiter?: string): Promise<void> {
  const keys: string[] = [];
  for await (const object of listObjects(ctx, prefix, delimiter)) {
    keys.push(object.Key as string);
    if (keys.length >= ctx.batchSize) await deleteKeys(ctx, keys.splice(0));
  }
  await deleteKeys(ctx, keys);
}

/**
 * A body made of stored segments (read back from S3) followed by in-memory chunks, exactly `total`
 * bytes long. Built fresh per attempt because a stream cannot be rewound.
 */
export function concatBody(ctx: S3Context, segments: readonly SegmentRecord[], chunks: readonly Buffer[], total: number): Readable {
  async function* bytes(): AsyncGenerator<Buffer> {
    let sent = 0;
    const account = (length: number): void => {
      sent += length;
      if (sent > total) throw new Error(`upload body longer than the expected ${total} bytes`);
    };
    for (const segment of segments) {
      let out;
      try {
        out = await ctx.client.send(new GetObjectCommand({ Bucket: ctx.bucket, Key: segment.key }));
      } catch (err) {
        throw unavailable('GetObject', segment.key, err);
      }
      let read = 0;
      for await (const chunk of out.Body as Readable) {
        const buf = chunk as Buffer;
        read += buf.length;
        account(buf.length);
        yield buf;
      }
      if (read !== segment.size) throw new Error(`segment ${segment.key} holds ${read} bytes, expected ${segment.size}`);
    }
    for (const chunk of chunks) {
      account(chunk.length);
      yield chunk;
    }
    if (sent !== total) throw new Error(`upload body has ${sent} bytes, expected ${total}`);
  }
  return Readable.from(bytes(), { objectMode: false });
}

/**
 * Sends a request whose body is `segments` then the bytes in `buffer` (see concatBody), retrying with a
 * fresh body. A failure taints the buffer, so its slabs are not lent again while a write from them may
 * still be queued on a dead socket; the caller releases it either way.
 */
export async function sendConcatenated<T>(
  ctx: S3Context,
  segments: readonly SegmentRecord[],
  buffer: PartBuffer,
  total: number,
  send: (body: Readable) => Promise<T>,
): Promise<T> {
  try {
    return await withStreamRetries(ctx, () => send(concatBody(ctx, segments, buffer.views(), total)));
  } catch (err) {
    buffer.taint();
    throw err;
  }
}

/**
 * Runs a request whose body is a stream: the SDK does not retry those (it cannot rewind them), so
 * retryable failures are retried here with a fresh body, with exponential backoff and jitter.
 */
export async function withStreamRetries<T>(ctx: S3Context, attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (n >= ctx.maxAttempts || !isRetryable(err)) throw err;
      await delay(Math.min(20_000, 100 * 2 ** n) * (0.5 + Math.random() / 2));
    }
  }
}
