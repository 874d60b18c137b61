// BlobDriver on S3-compatible object storage (@aws-sdk/client-s3). Key layout: ./s3-keys.ts.
// In-progress objects: ./s3-writer.ts. Copies: ./s3-copy.ts. Cleanup: ./s3-sweep.ts. Limits: ./s3-parts.ts.
import { addAbortSignal, Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { s3ConfigSchema, type S3Config, type S3ConfigInput } from './s3-config.js';
import { createS3Client, describeEndpoint } from './s3-client.js';
import { errorMessage, errorName, httpStatus, isAbort, isInvalidRange, isNotFound, isUnsupported, unavailable } from './s3-errors.js';
import { deleteBatch, deleteKeys, deletePrefix, listObjects, type ObjectParams, type S3Context } from './s3-objects.js';
import { discardInProgress, freshState, parseState, stateSize, type UploadState } from './s3-upload-state.js';
import { S3Keys } from './s3-keys.js';
import { planParts, S3_LIMITS, type S3Limits } from './s3-parts.js';
import { copySource, multipartCopy } from './s3-copy.js';
import { composeByPartCopy, composableAsParts } from './s3-compose.js';
import { streamParts } from './compose.js';
import { sweepInProgress } from './s3-sweep.js';
import { S3Writer } from './s3-writer.js';
import { bodySender } from './s3-sender.js';
import { IO_BUFFER, IoBufferPool, SMALL_IO_BUFFER } from './io-buffers.js';
import {
  BlobDriverError,
  BlobNotFoundError,
  InProgressLostError,
  InvalidOffsetError,
  StorageUnavailableError,
  type BlobDriver,
  type BlobInfo,
  type BlobSender,
  type BlobWriter,
  type DeleteManyResult,
  type PutOptions,
  type ReadOptions,
  type WriterOptions,
} from './types.js';
import { keeps } from './put-keep.js';

const GiB = 1024 * 1024 * 1024;

/** Knobs for tests and unusual stores; production uses S3's real limits. */
export interface S3DriverOptions {
  /** Overrides S3's limits, e.g. a lower maxCopySize to exercise multipart copies with small objects. */
  limits?: Partial<S3Limits>;
  /** Range size for multipart copies of objects over maxCopySize (default 1 GiB, capped at maxCopySize). */
  copyRangeBytes?: number;
  /** Keys per listing page and per batched delete (default and maximum 1000); small values test paging. */
  batchSize?: number;
  /** Clock for the presigned-URL cache. */
  now?: () => number;
}

/** Presigned URLs kept for reuse; bounded so a huge catalogue cannot grow it without end. */
const PRESIGN_CACHE_ENTRIES = 10_000;

export class S3BlobDriver implements BlobDriver {
  readonly name = 's3';
  /** The SDK client; tests attach middleware to it to record requests. */
  readonly client: S3Client;
  private readonly ctx: S3Context;
  /** Buffers of the uploads and sends in progress (tests read how much it holds). */
  readonly buffers: IoBufferPool;
  private readonly keys: S3Keys;
  private readonly copyRangeBytes: number;
  private readonly now: () => number;
  private readonly presigned = new Map<string, { url: string; reuseUntil: number }>();

  constructor(
    readonly config: S3Config,
    options: S3DriverOptions = {},
  ) {
    this.client = createS3Client(config);
    this.keys = new S3Keys(config.prefix);
    this.buffers = new IoBufferPool(IO_BUFFER, config.bufferPoolBytes, SMALL_IO_BUFFER);
    const limits: S3Limits = { ...S3_LIMITS, ...options.limits };
    const objectParams: ObjectParams = {};
    const tempParams: ObjectParams = {};
    if (config.sse !== undefined) {
      objectParams.ServerSideEncryption = tempParams.ServerSideEncryption = config.sse;
      if (config.kmsKeyId !== undefined) objectParams.SSEKMSKeyId = tempParams.SSEKMSKeyId = config.kmsKeyId;
    }
    if (config.storageClass !== undefined) objectParams.StorageClass = config.storageClass as NonNullable<ObjectParams['StorageClass']>;
    this.ctx = {
      client: this.client,
      buffers: this.buffers,
      bucket: config.bucket,
      keys: this.keys,
      limits,
      plan: planParts(config.partSizeBytes, limits),
      maxAttempts: config.maxAttempts,
      batchSize: Math.max(1, Math.min(1000, options.batchSize ?? 1000)),
      partChecksums: config.checksum === 'when_supported',
      deleteContentMd5: config.checksum === 'when_required',
      objectParams,
      tempParams,
    };
    this.copyRangeBytes = Math.min(options.copyRangeBytes ?? GiB, limits.maxCopySize);
    this.now = options.now ?? Date.now;
  }

  async stat(key: string): Promise<BlobInfo> {
    const s3Key = this.keys.object(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: s3Key }));
      return { key, size: out.ContentLength ?? 0, modifiedAt: out.LastModified ?? new Date(0) };
    } catch (err) {
      throw this.mapError('HeadObject', key, err);
    }
  }

  async reader(key: string, options: ReadOptions = {}): Promise<Readable> {
    const { start, end, range } = requestedRange(key, options);
    const { signal } = options;
    let body: Readable;
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.config.bucket, Key: this.keys.object(key), Range: range }),
        signal === undefined ? {} : { abortSignal: signal },
      );
      body = out.Body as Readable;
      const length = out.ContentLength;
      if (range !== undefined && out.ContentRange === undefined) {
        // The store ignored the Range and sent the whole object: cut the range out here.
        const whole = length ?? Number.MAX_SAFE_INTEGER;
        if (start > whole) {
          body.destroy();
          throw new InvalidOffsetError(key, start);
        }
        body = sliceStream(body, start, end === undefined ? undefined : Math.min(end, whole - 1) - start + 1);
      } else {
        const total = totalFromContentRange(out.ContentRange);
        // Some stores serve more than asked (s3rver reads "bytes=0-0" as the whole object): trim.
        if (end !== undefined && total !== undefined && length !== undefined) {
          const expected = Math.min(end, total - 1) - start + 1;
          if (length > expected) body = sliceStream(body, 0, expected);
        }
      }
    } catch (err) {
      if (isInvalidRange(err) && !isAbort(err)) return this.readPastEnd(key, start);
      throw this.mapError('GetObject', key, err);
    }
    if (signal !== undefined) addAbortSignal(signal, body);
    return body;
  }

  /**
   * Sends from two reused buffers filled from the GetObject body (bodySender): fewer, larger socket
   * writes than piping the body's 16–64 KiB chunks through streams, and the object's size is known
   * at open, so a size that disagrees with the registry's record is found before any byte is sent.
   */
  async openSender(key: string, options: ReadOptions = {}): Promise<BlobSender> {
    const { start, end, range } = requestedRange(key, options);
    const { signal } = options;
    const target = `${this.config.bucket}/${this.keys.object(key)}`;
    let out: GetObjectCommandOutput;
    try {
      out = await this.client.send(
        new GetObjectCommand({ Bucket: this.config.bucket, Key: this.keys.object(key), Range: range }),
        signal === undefined ? {} : { abortSignal: signal },
      );
    } catch (err) {
      if (isInvalidRange(err) && !isAbort(err)) {
        const { size } = await this.stat(key);
        if (start === size) return emptySender(size);
        throw new InvalidOffsetError(key, start);
      }
      throw this.mapError('GetObject', key, err);
    }
    const body = out.Body as Readable;
    const length = out.ContentLength;
    if (length === undefined) {
      body.destroy();
      throw new StorageUnavailableError(`GetObject ${target} answered without a Content-Length`);
    }
    const total = totalFromContentRange(out.ContentRange);
    // No ContentRange: the whole object, asked for or not (a store that ignores Range sends it all).
    const size = total ?? length;
    const span = { skip: total === undefined ? start : 0, length: Math.max(0, Math.min(end ?? size - 1, size - 1) - start + 1) };
    if (start > size) {
      body.destroy();
      throw new InvalidOffsetError(key, start);
    }
    return bodySender(key, body, size, span, start, this.ctx.buffers, (err) => (isAbort(err) ? (err as Error) : unavailable('GetObject', target, err)));
  }

  async put(key: string, data: Buffer, options: PutOptions = {}): Promise<void> {
    // S3 reads after a write are strongly consistent, and a PutObject that answered is durable.
    if (options.keep !== undefined && (await this.holds(key, data, options))) return;
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.config.bucket,
          Key: this.keys.object(key),
          Body: data,
          ContentLength: data.length,
          ...this.ctx.objectParams,
        }),
      );
    } catch (err) {
      throw this.mapError('PutObject', key, err);
    }
  }

  private async holds(key: string, data: Buffer, options: PutOptions): Promise<boolean> {
    try {
      if (options.keep === 'same-size') return (await this.stat(key)).size === data.length;
      return keeps(options, await this.get(key), data);
    } catch (err) {
      if (err instanceof BlobNotFoundError) return false;
      throw err;
    }
  }

  async get(key: string): Promise<Buffer> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: this.keys.object(key) }));
      return out.Body === undefined ? Buffer.alloc(0) : Buffer.from(await out.Body.transformToByteArray());
    } catch (err) {
      throw this.mapError('GetObject', key, err);
    }
  }

  async writer(key: string, options: WriterOptions): Promise<BlobWriter> {
    options.signal?.throwIfAborted();
    const resume = options.resume;
    if (resume === undefined) {
      // A fresh start at a key that held an in-progress object (not so for uploads, whose keys are new).
      await discardInProgress(this.ctx, key);
      return new S3Writer(this.ctx, key, freshState(key, this.ctx.plan), options.signal);
    }
    const state = resume.size === 0 && resume.state === undefined ? freshState(key, this.ctx.plan) : parseState(key, resume.state);
    if (state === undefined || stateSize(state) !== resume.size) {
      throw new InProgressLostError(key, `cannot be resumed: its checkpoint of ${resume.size} bytes carries no usable S3 state`);
    }
    await this.assertPiecesExist(key, state);
    const writer = new S3Writer(this.ctx, key, state, options.signal);
    await writer.dropObsolete();
    return writer;
  }

  /**
   * A checkpoint is only as good as the pieces it names: its tail segments (HEAD each, usually one or
   * none) and its multipart upload (ListParts, where the store has it). Gone pieces mean the
   * in-progress object was deleted, cancelled or swept.
   */
  private async assertPiecesExist(key: string, state: UploadState): Promise<void> {
    for (const segment of state.segments) {
      try {
        await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: segment.key }));
      } catch (err) {
        if (isNotFound(err)) throw new InProgressLostError(key, `lost its tail segment ${segment.key}`);
        throw unavailable('HeadObject', segment.key, err);
      }
    }
    if (state.uploadId === undefined || state.parts.length === 0) return;
    try {
      await this.client.send(new ListPartsCommand({ Bucket: this.config.bucket, Key: this.keys.object(key), UploadId: state.uploadId, MaxParts: 1 }));
    } catch (err) {
      if (isUnsupported(err)) return;
      if (isNotFound(err) || errorName(err) === 'NoSuchUpload') throw new InProgressLostError(key, 'lost its multipart upload');
      throw unavailable('ListParts', this.keys.object(key), err);
    }
  }

  async compose(parts: string[], to: string): Promise<void> {
    const sizes = await Promise.all(parts.map(async (part) => (await this.stat(part)).size));
    const copied =
      composableAsParts(sizes, this.ctx.limits) &&
      (await composeByPartCopy(
        this.ctx,
        parts.map((part) => this.keys.object(part)),
        this.keys.object(to),
      ));
    // Parts S3 cannot copy as parts (small, huge, none), or a server without UploadPartCopy: the
    // bytes pass through this process.
    if (!copied) await streamParts(this, parts, to);
  }

  async move(from: string, to: string): Promise<void> {
    const size = (await this.stat(from)).size;
    if (from === to) return;
    const source = this.keys.object(from);
    const target = this.keys.object(to);
    if (size <= this.ctx.limits.maxCopySize) {
      try {
        await this.client.send(
          new CopyObjectCommand({
            Bucket: this.config.bucket,
            Key: target,
            CopySource: copySource(this.config.bucket, source),
            MetadataDirective: 'COPY',
            ...this.ctx.objectParams,
          }),
        );
      } catch (err) {
        throw this.mapError('CopyObject', from, err);
      }
    } else {
      await multipartCopy(this.ctx, source, target, size, this.copyRangeBytes);
    }
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: source }));
    } catch (err) {
      throw this.mapError('DeleteObject', from, err);
    }
  }

  async delete(key: string): Promise<void> {
    const s3Key = this.keys.object(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: s3Key }));
    } catch (err) {
      if (!isNotFound(err)) throw this.mapError('DeleteObject', key, err);
    }
    await deletePrefix(this.ctx, this.keys.children(key));
    // In-progress objects at `key` and under `key/` share the upload directory of `key`.
    const dirs = new Set<string>([this.keys.uploadDir(key)]);
    const internal: string[] = [];
    for await (const object of listObjects(this.ctx, this.keys.uploadDir(key))) {
      const objectKey = object.Key as string;
      internal.push(objectKey);
      dirs.add(S3Keys.dirOf(objectKey));
    }
    for (const dir of dirs) await discardInProgress(this.ctx, this.keys.keyOfUploadDir(dir));
    await deleteKeys(this.ctx, internal);
  }

  /** DeleteObjects in batches of up to 1000 keys, one batch after another. */
  async deleteMany(keys: string[]): Promise<DeleteManyResult> {
    const result: DeleteManyResult = { deleted: [], failed: [] };
    const byS3Key = new Map<string, string>();
    for (const key of keys) byS3Key.set(this.keys.object(key), key);
    const s3Keys = [...byS3Key.keys()];
    for (let start = 0; start < s3Keys.length; start += this.ctx.batchSize) {
      const batch = s3Keys.slice(start, start + this.ctx.batchSize);
      const failed = await deleteBatch(this.ctx, batch);
      for (const s3Key of batch) {
        const key = byS3Key.get(s3Key) as string;
        const error = failed.get(s3Key);
        if (error === undefined) result.deleted.push(key);
        else result.failed.push({ key, error });
      }
    }
    return result;
  }

  async *list(prefix: string): AsyncIterable<string> {
    for await (const object of listObjects(this.ctx, this.keys.children(prefix))) {
      const key = this.keys.fromObject(object.Key as string);
      if (key !== undefined) yield key;
    }
  }

  /** A presigned GET, reused until shortly before it expires; undefined when redirects are off. */
  async redirectUrl(key: string): Promise<string | undefined> {
    const { enabled, expiresSeconds, cacheSeconds } = this.config.redirect;
    if (!enabled) return undefined;
    const now = this.now();
    const cached = this.presigned.get(key);
    if (cached !== undefined && now < cached.reuseUntil) return cached.url;
    const url = await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.config.bucket, Key: this.keys.object(key) }), {
      expiresIn: expiresSeconds,
    });
    // Default reuse window: the lifetime minus a margin (a tenth, at least a minute) for the client's fetch.
    const reuse = cacheSeconds ?? Math.max(0, expiresSeconds - Math.max(60, Math.ceil(expiresSeconds / 10)));
    this.presigned.delete(key);
    this.presigned.set(key, { url, reuseUntil: now + reuse * 1000 });
    if (this.presigned.size > PRESIGN_CACHE_ENTRIES) {
      const oldest = this.presigned.keys().next();
      if (oldest.done !== true) this.presigned.delete(oldest.value);
    }
    return url;
  }

  /** HeadBucket; the error names the endpoint and bucket and says what is wrong. */
  async ping(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.config.bucket }));
    } catch (err) {
      throw new StorageUnavailableError(describeS3Failure(this.config, err), { cause: err });
    }
  }

  /**
   * Crash and abandonment leftovers: discards in-progress objects untouched since `olderThan` (their
   * multipart upload, segments and state), orphaned segments, and multipart uploads whose object shows
   * no activity since then. Returns how many in-progress objects or orphans were removed.
   */
  async sweep(olderThan: Date, isLive: (key: string) => Promise<boolean>): Promise<number> {
    return sweepInProgress(this.ctx, olderThan, isLive);
  }

  async close(): Promise<void> {
    this.presigned.clear();
    this.client.destroy();
  }

  /** A 416: reading exactly at the end gives an empty stream, past it an InvalidOffsetError. */
  private async readPastEnd(key: string, start: number): Promise<Readable> {
    const { size } = await this.stat(key);
    if (start === size) return Readable.from([], { objectMode: false });
    throw new InvalidOffsetError(key, start);
  }

  private mapError(operation: string, key: string, err: unknown): Error {
    if (isAbort(err) || err instanceof BlobDriverError) return err as Error;
    if (isNotFound(err)) return new BlobNotFoundError(key);
    return unavailable(operation, `${this.config.bucket}/${this.keys.object(key)}`, err);
  }
}

/** The checked bounds of a read and its Range header (none for a whole-object read). */
function requestedRange(key: string, options: ReadOptions): { start: number; end: number | undefined; range: string | undefined } {
  const start = options.start ?? 0;
  const { end } = options;
  if (!Number.isSafeInteger(start) || start < 0) throw new InvalidOffsetError(key, start);
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) throw new InvalidOffsetError(key, end);
  // No Range header for whole-object reads: S3 answers 416 to any range of an empty object.
  return { start, end, range: start === 0 && end === undefined ? undefined : `bytes=${start}-${end ?? ''}` };
}

/** What a range starting at the end of an object sends: nothing. */
function emptySender(size: number): BlobSender {
  return {
    size,
    sendTo: async (_dest, _signal, check) => check?.beforeLast(),
    close: async () => undefined,
  };
}

/** Parses the total size from `bytes a-b/total`. */
function totalFromContentRange(contentRange: string | undefined): number | undefined {
  const match = contentRange === undefined ? null : /\/(\d+)$/.exec(contentRange);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** `length` bytes of `src` after skipping `skip` (to the end without a length); stops reading early. */
function sliceStream(src: Readable, skip: number, length?: number): Readable {
  async function* slice(): AsyncGenerator<Buffer> {
    let toSkip = skip;
    let left = length ?? Number.POSITIVE_INFINITY;
    if (left === 0) return;
    for await (const chunk of src) {
      let buf = chunk as Buffer;
      if (toSkip > 0) {
        const dropped = Math.min(toSkip, buf.length);
        toSkip -= dropped;
        buf = buf.subarray(dropped);
        if (buf.length === 0) continue;
      }
      const piece = buf.length > left ? buf.subarray(0, left) : buf;
      left -= piece.length;
      yield piece;
      if (left === 0) return;
    }
  }
  return Readable.from(slice(), { objectMode: false });
}

/** A startup/readiness message naming the endpoint and bucket and the likely cause. */
export function describeS3Failure(config: Pick<S3Config, 'bucket' | 'endpoint' | 'region'>, err: unknown): string {
  const where = `S3 bucket "${config.bucket}" at ${describeEndpoint(config)}`;
  const name = errorName(err);
  const status = httpStatus(err);
  if (name === 'NoSuchBucket' || name === 'NotFound' || status === 404) return `${where} does not exist`;
  if (status === 403 || status === 401 || /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|Forbidden/.test(name)) {
    return `${where}: access denied (${name}); check the credentials and the bucket policy`;
  }
  if (status === undefined) return `${where} is unreachable: ${name}: ${errorMessage(err)}`;
  return `${where} failed: ${name} (HTTP ${status}): ${errorMessage(err)}`;
}

/** Builds the driver from (unparsed or parsed) configuration. */
export function createS3Driver(config: S3ConfigInput | S3Config, options?: S3DriverOptions): S3BlobDriver {
  return new S3BlobDriver(s3ConfigSchema.parse(config), options);
}

/** Refuses to start on a missing bucket, wrong credentials or an unreachable endpoint. */
export async function checkS3Startup(config: S3ConfigInput | S3Config): Promise<void> {
  const driver = createS3Driver(config);
  try {
    await driver.ping();
  } finally {
    await driver.close();
  }
}
