// Server-side copies of committed objects. S3 copies at most 5 GiB in one CopyObject; bigger objects
// are copied as a multipart upload of UploadPartCopy ranges, so no byte passes through Berth.
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, UploadPartCopyCommand } from '@aws-sdk/client-s3';
import { unavailable } from './s3-errors.js';
import { type S3Context } from './s3-objects.js';
import { abortUpload } from './s3-upload-state.js';
import { copyRanges, formatRange, type ByteRange } from './s3-parts.js';

/** Ranges copied at once: each is a server-side copy of up to 5 GiB. */
const COPY_CONCURRENCY = 4;

/** The x-amz-copy-source value: bucket/key, URL-encoded except for the slashes. */
export function copySource(bucket: string, s3Key: string): string {
  return `${bucket}/${s3Key.split('/').map(encodeURIComponent).join('/')}`;
}

/** One part of a server-side multipart copy: a whole object, or a byte range of it. */
export interface CopyPart {
  source: string;
  range?: ByteRange;
}

/**
 * Writes `target` as a multipart upload whose parts are UploadPartCopy of `parts`, in order, a few at
 * a time. On failure the upload is aborted and the backend's error is thrown as it came.
 */
export async function copyAsParts(ctx: S3Context, target: string, parts: readonly CopyPart[]): Promise<void> {
  let uploadId: string | undefined;
  try {
    const created = await ctx.client.send(new CreateMultipartUploadCommand({ Bucket: ctx.bucket, Key: target, ...ctx.objectParams }));
    uploadId = created.UploadId;
    if (uploadId === undefined) throw new Error('no UploadId in the response');
    const done: { PartNumber: number; ETag: string }[] = [];
    for (let i = 0; i < parts.length; i += COPY_CONCURRENCY) {
      const batch = parts.slice(i, i + COPY_CONCURRENCY);
      const copied = await Promise.all(
        batch.map(async (part, j) => {
          const PartNumber = i + j + 1;
          const out = await ctx.client.send(
            new UploadPartCopyCommand({
              Bucket: ctx.bucket,
              Key: target,
              UploadId: uploadId,
              PartNumber,
              CopySource: copySource(ctx.bucket, part.source),
              ...(part.range ? { CopySourceRange: formatRange(part.range) } : {}),
            }),
          );
          const ETag = out.CopyPartResult?.ETag;
          if (ETag === undefined) throw new Error(`no ETag for copied part ${PartNumber}`);
          return { PartNumber, ETag };
        }),
      );
      done.push(...copied);
    }
    await ctx.client.send(new CompleteMultipartUploadCommand({ Bucket: ctx.bucket, Key: target, UploadId: uploadId, MultipartUpload: { Parts: done } }));
  } catch (err) {
    if (uploadId !== undefined) await abortUpload(ctx, target, uploadId).catch(() => undefined);
    throw err;
  }
}

/** Copies `source` (of `size` bytes) to `target` in UploadPartCopy ranges of `rangeSize` at most. */
export async function multipartCopy(ctx: S3Context, source: string, target: string, size: number, rangeSize: number): Promise<void> {
  const parts = copyRanges(size, rangeSize, ctx.limits).map((range) => ({ source, range }));
  try {
    await copyAsParts(ctx, target, parts);
  } catch (err) {
    throw unavailable('multipart copy to', target, err);
  }
}
