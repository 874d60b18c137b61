// The state of an in-progress S3 object (multipart upload id, finished parts, tail segments), which
// travels in the writer's checkpoint, and the calls that throw an in-progress object away.
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { z } from 'zod';
import type { PartPlan } from './s3-parts.js';
import { isNotFound, isUnsupported, unavailable } from './s3-errors.js';
import { deletePrefix, type S3Context } from './s3-objects.js';

const partSchema = z.object({
  n: z.number().int().min(1),
  etag: z.string().min(1),
  size: z.number().int().min(0),
  crc32: z.string().optional(),
});
const segmentSchema = z.object({ key: z.string().min(1), size: z.number().int().min(0) });

/** What a close() returns as the checkpoint's state, for the owner to keep. */
export const uploadStateSchema = z.object({
  v: z.literal(1),
  key: z.string(),
  uploadId: z.string().min(1).optional(),
  plan: z.object({ base: z.number().int().positive(), tierLength: z.number().int().positive() }),
  /** Finished multipart parts, in part-number order. */
  parts: z.array(partSchema),
  /** Bytes after the last part, stored as small objects until they fill the next part. */
  segments: z.array(segmentSchema),
  /** Segments already folded into a part, deleted by the next writer once the owner stored this state. */
  obsolete: z.array(z.string()).default([]),
  createdAt: z.string(),
});
export type UploadState = z.infer<typeof uploadStateSchema>;
export type PartRecord = z.infer<typeof partSchema>;
export type SegmentRecord = z.infer<typeof segmentSchema>;

export function freshState(key: string, plan: PartPlan): UploadState {
  return { v: 1, key, plan, parts: [], segments: [], obsolete: [], createdAt: new Date().toISOString() };
}

export function stateSize(state: UploadState): number {
  let size = 0;
  for (const part of state.parts) size += part.size;
  for (const segment of state.segments) size += segment.size;
  return size;
}

/**
 * The state carried by a checkpoint of the in-progress object at `key`; undefined when it is not one
 * of this driver's states for that key.
 */
export function parseState(key: string, text: string | undefined): UploadState | undefined {
  if (text === undefined) return undefined;
  try {
    const state = uploadStateSchema.parse(JSON.parse(text));
    return state.key === key ? state : undefined;
  } catch {
    return undefined;
  }
}

/** Sends AbortMultipartUpload; a store without the call (s3rver) or an already gone upload is fine. */
export async function abortUpload(ctx: S3Context, s3Key: string, uploadId: string): Promise<void> {
  try {
    await ctx.client.send(new AbortMultipartUploadCommand({ Bucket: ctx.bucket, Key: s3Key, UploadId: uploadId }));
  } catch (err) {
    if (isUnsupported(err) || isNotFound(err)) return;
    throw unavailable('AbortMultipartUpload', s3Key, err);
  }
}

/**
 * Throws away the in-progress object at `key`: the multipart uploads at its object key (found by
 * listing, where the store can) and its segments.
 */
export async function discardInProgress(ctx: S3Context, key: string, uploadId?: string): Promise<void> {
  const s3Key = ctx.keys.object(key);
  const ids = new Set<string>(uploadId === undefined ? [] : [uploadId]);
  for (const id of await multipartUploadsAt(ctx, s3Key)) ids.add(id);
  for (const id of ids) await abortUpload(ctx, s3Key, id);
  // Direct children only: in-progress objects under `key/` are not this one's.
  await deletePrefix(ctx, ctx.keys.uploadDir(key), '/');
}

/** Ids of the multipart uploads in progress at exactly `s3Key`; empty where the store cannot list them. */
async function multipartUploadsAt(ctx: S3Context, s3Key: string): Promise<string[]> {
  try {
    const out = await ctx.client.send(new ListMultipartUploadsCommand({ Bucket: ctx.bucket, Prefix: s3Key }));
    return (out.Uploads ?? []).filter((u) => u.Key === s3Key && u.UploadId !== undefined).map((u) => u.UploadId as string);
  } catch (err) {
    if (isUnsupported(err)) return [];
    throw unavailable('ListMultipartUploads', ctx.bucket, err);
  }
}
