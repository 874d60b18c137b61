// The in-progress object at a key is one S3 multipart upload plus a tail of small "segment" objects
// holding the bytes that do not fill a part yet. Its state (upload id, finished parts, segments) is the
// checkpoint every close() returns; the owner (the upload session) stores it in metadata, so the next
// PATCH can land on any process and no copy in the bucket can disagree with it.
//
// Memory: the writer buffers at most one part while the previous part uploads (two parts at most), in
// buffers lent by the driver's pool (s3-part-buffer.ts).
// A close() with an unfinished part writes the buffered bytes as a new segment; when later writes fill
// the part, the segments are streamed back from S3 together with the new bytes as that part. Commit
// completes the multipart upload server-side (or, below one part, writes or copies a single object),
// so a finished blob is never streamed back through Berth.
import { addAbortSignal, type Readable } from 'node:stream';
import { CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { copySource } from './s3-copy.js';
import { partSizeFor } from './s3-parts.js';
import { PartBuffer } from './s3-part-buffer.js';
import { deleteKeys, deletePrefix, sendConcatenated, type S3Context } from './s3-objects.js';
import { abortUpload, discardInProgress, stateSize, type PartRecord, type SegmentRecord, type UploadState } from './s3-upload-state.js';
import { unavailable } from './s3-errors.js';
import { BlobDriverError, StorageUnavailableError, type BlobWriter, type WriterCheckpoint, BlobTooLargeError } from './types.js';

export class S3Writer implements BlobWriter {
  private readonly s3Key: string;
  /** Bytes received since the last part or segment, not yet stored anywhere. */
  private part: PartBuffer;
  private segmentBytes: number;
  private written: number;
  private nextPart: number;
  private inflight: Promise<void> | undefined;
  private failure: unknown;
  /** Set when a part failed: what is still stored from there on, applied once writing has stopped. */
  private rollback: { partNumber: number; segments: SegmentRecord[] } | undefined;
  /** Segments already folded into a part; deleted once a state without them is stored. */
  private obsolete: string[] = [];
  private finished = false;

  constructor(
    private readonly ctx: S3Context,
    private readonly key: string,
    private readonly state: UploadState,
    private readonly signal?: AbortSignal,
  ) {
    this.s3Key = ctx.keys.object(key);
    this.written = stateSize(state);
    this.segmentBytes = state.segments.reduce((sum, segment) => sum + segment.size, 0);
    this.nextPart = state.parts.length + 1;
    this.part = new PartBuffer(ctx.buffers);
  }

  private get buffered(): number {
    return this.part.length;
  }

  get size(): number {
    return this.written;
  }

  async write(src: Readable, signal?: AbortSignal): Promise<number> {
    this.assertOpen();
    this.throwIfFailed();
    const signals = [this.signal, signal].filter((s): s is AbortSignal => s !== undefined);
    const abort = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    let appended = 0;
    try {
      abort?.throwIfAborted();
      // A stalled source must still notice the abort, so the signal destroys the stream itself.
      if (abort !== undefined) addAbortSignal(abort, src);
      for await (const raw of src) {
        let chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw as Uint8Array);
        while (chunk.length > 0) {
          if (this.nextPart > this.ctx.limits.maxParts) {
            throw new BlobTooLargeError(`${this.key}: object exceeds ${this.ctx.limits.maxParts} parts of S3's limits`);
          }
          const room = this.partTarget() - this.segmentBytes - this.buffered;
          if (room <= 0) {
            await this.launchPart();
            continue;
          }
          const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
          if (this.inflight !== undefined && !this.part.fits(piece.length) && !this.ctx.buffers.canLend) {
            // The pool is spent: this upload's own part in flight hands its buffers back before more
            // are taken, so concurrent uploads stay within the pool instead of allocating around it.
            await this.settle();
            this.throwIfFailed();
            continue;
          }
          this.part.append(piece);
          this.written += piece.length;
          appended += piece.length;
          chunk = chunk.subarray(piece.length);
          if (piece.length === room) await this.launchPart();
        }
      }
    } finally {
      // Even on abort, wait for the part in flight: `size` must describe stored or buffered bytes only.
      await this.settle();
    }
    this.throwIfFailed();
    return appended;
  }

  /** Stores buffered bytes; the checkpoint's state is the one after a failed part rolled back to the stored parts. */
  async close(): Promise<WriterCheckpoint> {
    this.assertOpen();
    await this.settle();
    this.finished = true;
    if (this.buffered > 0) {
      const segment = await this.storeSegment();
      this.state.segments.push(segment);
      this.segmentBytes += segment.size;
    }
    // Folded segments may go only once the owner has stored a state without them: the next writer does it.
    this.state.obsolete = this.obsolete.splice(0);
    return { size: this.written, state: JSON.stringify(this.state) };
  }

  /** Deletes segments an earlier writer folded into parts (its checkpoint, now stored, no longer needs them). */
  async dropObsolete(): Promise<void> {
    const obsolete = this.state.obsolete;
    this.state.obsolete = [];
    // Best effort: leftovers in the upload directory go with its commit, cancel or sweep.
    await deleteKeys(this.ctx, obsolete).catch(() => undefined);
  }

  /**
   * Completes the object at `key`. A failure changes nothing: the writer stays open, so close() can
   * still store what it holds and a later commit can try again.
   */
  async commit(): Promise<void> {
    this.assertOpen();
    await this.settle();
    this.throwIfFailed();
    const { state } = this;
    const pending = this.segmentBytes + this.buffered;
    // An upload without finished parts (its first part never landed) is finished as a single object too.
    if (state.uploadId === undefined || state.parts.length === 0) {
      await this.commitSingle();
      this.finished = true;
      // Nothing of the blob is in that upload; if aborting fails the sweeper retries it.
      if (state.uploadId !== undefined) await abortUpload(this.ctx, this.s3Key, state.uploadId).catch(() => undefined);
    } else {
      const parts = [...state.parts];
      if (pending > 0) {
        // A copy of the list and views of the buffer: a failed upload must leave both in place for close().
        parts.push(await this.uploadPart(this.nextPart, [...state.segments], this.part, pending));
      }
      await this.completeUpload(state.uploadId, parts);
      this.finished = true;
    }
    this.takePart().release();
    // The blob is in place; temporary objects that fail to go now are left to the sweeper.
    await deletePrefix(this.ctx, this.ctx.keys.uploadDir(this.key), '/').catch(() => undefined);
  }

  async cancel(): Promise<void> {
    this.assertOpen();
    this.finished = true;
    await this.settle();
    this.takePart().release();
    await discardInProgress(this.ctx, this.key, this.state.uploadId);
  }

  private partTarget(): number {
    return partSizeFor(this.state.plan, this.nextPart, this.ctx.limits);
  }

  /** Turns the segments and buffered bytes into the next part, uploading while the caller reads on. */
  private async launchPart(): Promise<void> {
    const partNumber = this.nextPart;
    if (partNumber > this.ctx.limits.maxParts) {
      throw new BlobTooLargeError(`${this.key}: object exceeds ${this.ctx.limits.maxParts} parts`);
    }
    // One part in flight at a time keeps memory at two parts and parts in order.
    await this.settle();
    this.throwIfFailed();
    const uploadId = await this.ensureUpload();
    this.nextPart++;
    const segments = this.state.segments.splice(0);
    const bytes = this.segmentBytes + this.buffered;
    this.segmentBytes = 0;
    const buffer = this.takePart();
    // Released either way; a send that failed has tainted it, so it leaves the pool.
    const upload = this.uploadPart(partNumber, segments, buffer, bytes, uploadId).finally(() => buffer.release());
    this.inflight = upload.then(
      (part) => {
        this.state.parts.push(part);
        for (const segment of segments) this.obsolete.push(segment.key);
      },
      (err: unknown) => {
        this.failure = err;
        this.rollback = { partNumber, segments };
      },
    );
  }

  private takePart(): PartBuffer {
    const part = this.part;
    this.part = new PartBuffer(this.ctx.buffers);
    return part;
  }

  private async settle(): Promise<void> {
    const inflight = this.inflight;
    this.inflight = undefined;
    if (inflight !== undefined) await inflight;
    this.applyRollback();
  }

  /**
   * After a failed part, falls back to what is stored: the parts before it and the segments it was to
   * absorb. Bytes buffered after it are dropped and `size` shrinks to match, so close() stores a
   * consistent state and the client resumes from there instead of from scratch.
   */
  private applyRollback(): void {
    const rollback = this.rollback;
    if (rollback === undefined) return;
    this.rollback = undefined;
    this.state.segments = rollback.segments;
    this.segmentBytes = rollback.segments.reduce((sum, segment) => sum + segment.size, 0);
    this.nextPart = rollback.partNumber;
    this.takePart().release();
    this.written = stateSize(this.state);
  }

  private throwIfFailed(): void {
    if (this.failure === undefined) return;
    const err = this.failure;
    if (err instanceof BlobDriverError) throw err;
    throw unavailable('UploadPart', this.s3Key, err);
  }

  private assertOpen(): void {
    if (this.finished) throw new BlobDriverError(`writer for ${this.key} is already closed`);
  }

  private async ensureUpload(): Promise<string> {
    if (this.state.uploadId !== undefined) return this.state.uploadId;
    try {
      const out = await this.ctx.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.ctx.bucket,
          Key: this.s3Key,
          ChecksumAlgorithm: this.ctx.partChecksums ? 'CRC32' : undefined,
          ...this.ctx.objectParams,
        }),
      );
      if (out.UploadId === undefined) throw new Error('no UploadId in the response');
      this.state.uploadId = out.UploadId;
      return out.UploadId;
    } catch (err) {
      throw unavailable('CreateMultipartUpload', this.s3Key, err);
    }
  }

  private async uploadPart(
    partNumber: number,
    segments: SegmentRecord[],
    buffer: PartBuffer,
    bytes: number,
    uploadId = this.state.uploadId,
  ): Promise<PartRecord> {
    if (partNumber > this.ctx.limits.maxParts) {
      throw new BlobTooLargeError(`${this.key}: object exceeds ${this.ctx.limits.maxParts} parts`);
    }
    if (bytes > this.ctx.limits.maxPartSize) {
      throw new BlobTooLargeError(`${this.key}: part ${partNumber} of ${bytes} bytes exceeds the part limit`);
    }
    try {
      const out = await sendConcatenated(this.ctx, segments, buffer, bytes, (body) =>
        this.ctx.client.send(
          new UploadPartCommand({
            Bucket: this.ctx.bucket,
            Key: this.s3Key,
            UploadId: uploadId,
            PartNumber: partNumber,
            ContentLength: bytes,
            Body: body,
          }),
        ),
      );
      if (out.ETag === undefined) throw new Error('no ETag in the response');
      const part: PartRecord = { n: partNumber, etag: out.ETag, size: bytes };
      if (this.ctx.partChecksums && out.ChecksumCRC32 !== undefined) part.crc32 = out.ChecksumCRC32;
      return part;
    } catch (err) {
      if (err instanceof StorageUnavailableError || err instanceof BlobDriverError) throw err;
      throw unavailable(`UploadPart ${partNumber}`, this.s3Key, err);
    }
  }

  /** Stores the buffered bytes as one more tail segment. */
  private async storeSegment(): Promise<SegmentRecord> {
    const bytes = this.buffered;
    const buffer = this.takePart();
    const key = this.ctx.keys.segment(this.key, this.written - bytes);
    try {
      await sendConcatenated(this.ctx, [], buffer, bytes, (body) =>
        this.ctx.client.send(
          new PutObjectCommand({
            Bucket: this.ctx.bucket,
            Key: key,
            ContentLength: bytes,
            Body: body,
            ...this.ctx.tempParams,
          }),
        ),
      );
    } catch (err) {
      throw unavailable('PutObject', key, err);
    } finally {
      buffer.release();
    }
    return { key, size: bytes };
  }

  /** Less than one part in total: one PutObject, or a server-side copy of a lone segment. */
  private async commitSingle(): Promise<void> {
    const segments = [...this.state.segments];
    const only = segments[0];
    if (segments.length === 1 && only !== undefined && this.buffered === 0) {
      try {
        await this.ctx.client.send(
          new CopyObjectCommand({
            Bucket: this.ctx.bucket,
            Key: this.s3Key,
            CopySource: copySource(this.ctx.bucket, only.key),
            MetadataDirective: 'REPLACE',
            ...this.ctx.objectParams,
          }),
        );
      } catch (err) {
        throw unavailable('CopyObject', this.s3Key, err);
      }
      return;
    }
    const bytes = this.segmentBytes + this.buffered;
    try {
      await sendConcatenated(this.ctx, segments, this.part, bytes, (body) =>
        this.ctx.client.send(
          new PutObjectCommand({
            Bucket: this.ctx.bucket,
            Key: this.s3Key,
            ContentLength: bytes,
            Body: body,
            ...this.ctx.objectParams,
          }),
        ),
      );
    } catch (err) {
      if (err instanceof StorageUnavailableError) throw err;
      throw unavailable('PutObject', this.s3Key, err);
    }
  }

  private async completeUpload(uploadId: string, parts: PartRecord[]): Promise<void> {
    try {
      await this.ctx.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.ctx.bucket,
          Key: this.s3Key,
          UploadId: uploadId,
          MultipartUpload: {
            Parts: [...parts].sort((a, b) => a.n - b.n).map((part) => ({ PartNumber: part.n, ETag: part.etag, ChecksumCRC32: part.crc32 })),
          },
        }),
      );
    } catch (err) {
      throw unavailable('CompleteMultipartUpload', this.s3Key, err);
    }
  }
}
