// Cleanup of what crashed or abandoned uploads leave in the bucket. An upload directory whose owner
// (the upload session) is gone is removed once its newest object is older than the cutoff; multipart
// uploads are listed too, for those that died before storing anything else.
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { isUnsupported, unavailable } from './s3-errors.js';
import { deleteKeys, listObjects, type S3Context } from './s3-objects.js';
import { abortUpload } from './s3-upload-state.js';
import { S3Keys } from './s3-keys.js';

/** Discards everything in progress that nothing owns and nothing touched since `olderThan`; returns how many were removed. */
export async function sweepInProgress(ctx: S3Context, olderThan: Date, isLive: (key: string) => Promise<boolean>): Promise<number> {
  const cutoff = olderThan.getTime();
  const dirs = new Map<string, { lastActive: number; objects: string[] }>();
  for await (const object of listObjects(ctx, ctx.keys.uploadsRoot())) {
    const objectKey = object.Key as string;
    const dir = S3Keys.dirOf(objectKey);
    const entry = dirs.get(dir) ?? { lastActive: 0, objects: [] };
    entry.lastActive = Math.max(entry.lastActive, object.LastModified?.getTime() ?? 0);
    entry.objects.push(objectKey);
    dirs.set(dir, entry);
  }
  let removed = 0;
  for (const [dir, entry] of dirs) {
    if (entry.lastActive >= cutoff || (await isLive(ctx.keys.keyOfUploadDir(dir)))) continue;
    await deleteKeys(ctx, entry.objects);
    removed++;
  }
  return removed + (await sweepUploads(ctx, cutoff, isLive));
}

/** Multipart uploads started before `cutoff` whose in-progress object nothing owns. */
async function sweepUploads(ctx: S3Context, cutoff: number, isLive: (key: string) => Promise<boolean>): Promise<number> {
  let removed = 0;
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  do {
    let out;
    try {
      out = await ctx.client.send(
        new ListMultipartUploadsCommand({
          Bucket: ctx.bucket,
          Prefix: ctx.keys.children(''),
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
    } catch (err) {
      // s3rver and some other stores cannot list uploads; their leftovers need a lifecycle rule.
      if (isUnsupported(err)) return removed;
      throw unavailable('ListMultipartUploads', ctx.bucket, err);
    }
    for (const upload of out.Uploads ?? []) {
      if (upload.Key === undefined || upload.UploadId === undefined) continue;
      if ((upload.Initiated?.getTime() ?? 0) >= cutoff) continue;
      const key = ctx.keys.fromObject(upload.Key);
      if (key !== undefined && (await isLive(key))) continue;
      await abortUpload(ctx, upload.Key, upload.UploadId);
      removed++;
    }
    keyMarker = out.IsTruncated === true ? out.NextKeyMarker : undefined;
    uploadIdMarker = out.IsTruncated === true ? out.NextUploadIdMarker : undefined;
  } while (keyMarker !== undefined);
  return removed;
}
