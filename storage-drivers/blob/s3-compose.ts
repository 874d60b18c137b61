// Server-side concatenation of committed objects (a pull-through fill's chunks into its blob): one
// multipart upload whose parts are UploadPartCopy of each whole object, so no byte passes through Berth.
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, UploadPartCopyCommand } from '@aws-sdk/client-s3';
import { copySource } from './s3-copy.js';
import { isUnsupported, unavailable } from './s3-errors.js';
import type { S3Context } from './s3-objects.js';
import { abortUpload } from './s3-upload-state.js';

/** Part copies at once. */
const COPY_CONCURRENCY = 4;

/**
 * True when S3 can compose objects of these sizes as parts: every part but the last at least the
 * minimum part size, none above the most one UploadPartCopy copies, and not too many parts.
 */
export function composableAsParts(sizes: readonly number[], limits: S3Context['limits']): boolean {
  if (sizes.length === 0 || sizes.length > limits.maxParts) return false;
  return sizes.every((size, i) => size > 0 && size <= limits.maxPartSize && (i === sizes.length - 1 || size >= limits.minPartSize));
}

/**
 * Concatenates the objects at the S3 keys `sources` into `target`; the caller checked
 * composableAsParts. False, with nothing written, when the server has no UploadPartCopy (s3rver).
 */
export async function composeByPartCopy(ctx: S3Context, sources: readonly string[], target: string): Promise<boolean> {
  let uploadId: string | undefined;
  try {
    const created = await ctx.client.send(new CreateMultipartUploadCommand({ Bucket: ctx.bucket, Key: target, ...ctx.objectParams }));
    uploadId = created.UploadId;
    if (uploadId === undefined) throw new Error('no UploadId in the response');
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let first = 0; first < sources.length; first += COPY_CONCURRENCY) {
      const batch = sources.slice(first, first + COPY_CONCURRENCY);
      const copied = await Promise.all(
        batch.map(async (source, j) => {
          const PartNumber = first + j + 1;
          const out = await ctx.client.send(
            new UploadPartCopyCommand({ Bucket: ctx.bucket, Key: target, UploadId: uploadId, PartNumber, CopySource: copySource(ctx.bucket, source) }),
          );
          const ETag = out.CopyPartResult?.ETag;
          if (ETag === undefined) throw new Error(`no ETag for copied part ${PartNumber}`);
          return { PartNumber, ETag };
        }),
      );
      parts.push(...copied);
    }
    await ctx.client.send(new CompleteMultipartUploadCommand({ Bucket: ctx.bucket, Key: target, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
    return true;
  } catch (err) {
    if (uploadId !== undefined) await abortUpload(ctx, target, uploadId).catch(() => undefined);
    if (isUnsupported(err)) return false;
    throw unavailable('compose into', target, err);
  }
}
