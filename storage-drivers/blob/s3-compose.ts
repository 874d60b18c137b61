// Server-side concatenation of committed objects (a pull-through fill's chunks into its blob): one
// multipart upload whose parts are UploadPartCopy of each whole object, so no byte passes through Berth.
import { copyAsParts } from './s3-copy.js';
import { isUnsupported, unavailable } from './s3-errors.js';
import type { S3Context } from './s3-objects.js';

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
  try {
    await copyAsParts(
      ctx,
      target,
      sources.map((source) => ({ source })),
    );
    return true;
  } catch (err) {
    if (isUnsupported(err)) return false;
    throw unavailable('compose into', target, err);
  }
}
