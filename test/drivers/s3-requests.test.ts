// Records every S3 request the driver sends (against s3rver, which enforces none of S3's limits) and
// checks them against AWS S3's rules: parts ≥ 5 MiB except the last, ≤ 5 GiB, ≤ 10,000 of them,
// single copies ≤ the copy limit, multipart copies in legal ranges, at most 1000 keys per
// DeleteObjects. The copy limit is lowered to 8 MiB to drive a 20 MiB object down the >5 GiB path;
// s3rver does not implement UploadPartCopy, so that path is proven by the requests sent (the move
// then fails cleanly, leaving the source intact).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Driver, type S3BlobDriver } from '../../storage-drivers/blob/s3.js';
import { S3_LIMITS } from '../../storage-drivers/blob/s3-parts.js';
import { BlobNotFoundError, StorageUnavailableError, type WriterCheckpoint } from '../../storage-drivers/blob/types.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';
import { MiB, patternStream, rawKeys, sha256Of } from './s3-fixtures.js';

interface Sent {
  command: string;
  key?: string | undefined;
  uploadId?: string | undefined;
  partNumber?: number | undefined;
  /** The Content-Length header actually sent. */
  bytes?: number | undefined;
  copySource?: string | undefined;
  copyRange?: string | undefined;
  completedParts?: number[] | undefined;
  /** ContentLength of the response (HeadObject, GetObject). */
  responseBytes?: number | undefined;
  error?: string | undefined;
  /** DeleteObjects: the keys asked for and Quiet mode. */
  deleteKeys?: string[] | undefined;
  quiet?: boolean | undefined;
  /** Checksum headers actually sent (Content-MD5, x-amz-checksum-*, x-amz-sdk-checksum-algorithm). */
  checksumHeaders?: Record<string, string> | undefined;
  /** The MD5 (base64) of the request body actually sent, when it is a string. */
  bodyMd5?: string | undefined;
}

interface CommandInput {
  Key?: string;
  UploadId?: string;
  PartNumber?: number;
  CopySource?: string;
  CopySourceRange?: string;
  MultipartUpload?: { Parts?: { PartNumber?: number }[] };
  Delete?: { Objects?: { Key?: string }[]; Quiet?: boolean };
}

/** Adds recording middleware: the command and its input when sent, the wire size, the outcome. */
function record(client: S3Client, log: Sent[]): void {
  const byContext = new WeakMap<object, Sent>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as CommandInput;
      const sent: Sent = {
        command: String(context.commandName).replace(/Command$/, ''),
        key: input.Key,
        uploadId: input.UploadId,
        partNumber: input.PartNumber,
        copySource: input.CopySource,
        copyRange: input.CopySourceRange,
        completedParts: input.MultipartUpload?.Parts?.map((p) => p.PartNumber ?? 0),
        deleteKeys: input.Delete?.Objects?.map((o) => o.Key ?? ''),
        quiet: input.Delete?.Quiet,
      };
      log.push(sent);
      byContext.set(context, sent);
      try {
        const output = await next(args);
        const length = (output.output as { ContentLength?: number }).ContentLength;
        if (typeof length === 'number') sent.responseBytes = length;
        return output;
      } catch (err) {
        sent.error = (err as Error).name;
        throw err;
      }
    },
    { step: 'initialize', name: 'recordCommands', priority: 'high' },
  );
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      const headers = request.headers ?? {};
      const sent = byContext.get(context);
      if (sent !== undefined && headers['content-length'] !== undefined) sent.bytes = Number(headers['content-length']);
      if (sent !== undefined) {
        const checksums = Object.entries(headers).filter(([name]) => /^(content-md5|x-amz-checksum-|x-amz-sdk-checksum-)/i.test(name));
        sent.checksumHeaders = Object.fromEntries(checksums.map(([name, value]) => [name.toLowerCase(), value]));
        if (typeof request.body === 'string') sent.bodyMd5 = createHash('md5').update(request.body).digest('base64');
      }
      return next(args);
    },
    { step: 'finalizeRequest', name: 'recordWireSize', priority: 'low' },
  );
}

/** S3's rules for every multipart upload the log completed or started. */
function assertS3Rules(log: Sent[], limits = S3_LIMITS): void {
  const partSizes = new Map<string, Map<number, number>>();
  for (const sent of log) {
    if (sent.command === 'UploadPart') {
      assert.ok(sent.uploadId !== undefined && sent.partNumber !== undefined && sent.bytes !== undefined);
      assert.ok(sent.partNumber >= 1 && sent.partNumber <= limits.maxParts, `part number ${sent.partNumber}`);
      assert.ok(sent.bytes <= limits.maxPartSize, `part of ${sent.bytes} bytes is over 5 GiB`);
      const parts = partSizes.get(sent.uploadId) ?? new Map<number, number>();
      parts.set(sent.partNumber, sent.bytes);
      partSizes.set(sent.uploadId, parts);
    }
    if (sent.command === 'UploadPartCopy') {
      const match = /^bytes=(\d+)-(\d+)$/.exec(sent.copyRange ?? '');
      assert.ok(match, `copy range ${sent.copyRange}`);
      const length = Number(match[2]) - Number(match[1]) + 1;
      assert.ok(length <= limits.maxCopySize, `copy range of ${length} bytes over the copy limit`);
      assert.ok(sent.partNumber !== undefined && sent.partNumber <= limits.maxParts);
    }
  }
  for (const sent of log) {
    if (sent.command !== 'CompleteMultipartUpload' || sent.uploadId === undefined) continue;
    const numbers = sent.completedParts ?? [];
    assert.ok(numbers.length >= 1 && numbers.length <= limits.maxParts, `${numbers.length} parts`);
    assert.deepEqual(
      numbers,
      [...numbers].sort((x, y) => x - y),
      'parts listed in order',
    );
    const sizes = partSizes.get(sent.uploadId);
    if (sizes === undefined) continue; // a multipart copy: checked above
    for (const [i, n] of numbers.entries()) {
      const size = sizes.get(n);
      assert.ok(size !== undefined, `completed part ${n} was uploaded`);
      if (i < numbers.length - 1) assert.ok(size >= limits.minPartSize, `part ${n} of ${size} bytes is under 5 MiB`);
    }
  }
  // Single copies: the size of each source, from the HeadObject the driver sends first.
  for (const [i, sent] of log.entries()) {
    if (sent.command !== 'CopyObject') continue;
    const head = log
      .slice(0, i)
      .reverse()
      .find((s) => s.command === 'HeadObject' && s.responseBytes !== undefined);
    if (sent.copySource?.includes('/~uploads/') === true) continue; // a lone tail segment, under one part
    assert.ok(head?.responseBytes !== undefined, 'copy size known');
    assert.ok(head.responseBytes <= limits.maxCopySize, `single copy of ${head.responseBytes} bytes`);
  }
}

/** Sizes of the parts of the one upload in the log that was completed, in part order. */
function completedPartSizes(log: Sent[]): number[] {
  const complete = log.filter((s) => s.command === 'CompleteMultipartUpload' && s.error === undefined);
  assert.equal(complete.length, 1);
  const uploadId = complete[0]?.uploadId;
  const sizes = new Map<number, number>();
  for (const s of log) if (s.command === 'UploadPart' && s.uploadId === uploadId) sizes.set(s.partNumber ?? 0, s.bytes ?? -1);
  return (complete[0]?.completedParts ?? []).map((n) => sizes.get(n) ?? -1);
}

describe('S3 requests obey S3 limits (recorded against s3rver)', () => {
  let server: S3rverHandle;
  let a: S3BlobDriver;
  let b: S3BlobDriver;
  const log: Sent[] = [];

  before(async () => {
    server = await startS3rver();
    // Two instances with the smallest legal part size, as two Berth processes.
    a = createS3Driver(server.config({ prefix: 'rec', partSizeBytes: 5 * MiB }));
    b = createS3Driver(server.config({ prefix: 'rec', partSizeBytes: 5 * MiB }));
    record(a.client, log);
    record(b.client, log);
  });
  beforeEach(() => {
    log.length = 0;
  });
  after(async () => {
    await a.close();
    await b.close();
    await server.stop();
  });

  it('turns 20 separate 1 MiB PATCHes into 5 MiB parts', async () => {
    const key = 'uploads/small-patches/data';
    const hash = createHash('sha256');
    let checkpoint: WriterCheckpoint | undefined;
    for (let i = 0; i < 20; i++) {
      const writer = await (i % 2 === 0 ? a : b).writer(key, checkpoint === undefined ? {} : { resume: checkpoint });
      await writer.write(patternStream(i * MiB, MiB, hash));
      checkpoint = await writer.close();
    }
    await (await a.writer(key, { resume: checkpoint as WriterCheckpoint })).commit();

    const uploads = log.filter((s) => s.command === 'UploadPart');
    assert.ok(uploads.length > 0);
    for (const part of uploads) assert.ok((part.bytes ?? 0) >= 5 * MiB, `UploadPart of ${part.bytes} bytes`);
    assert.deepEqual(completedPartSizes(log), [5 * MiB, 5 * MiB, 5 * MiB, 5 * MiB]);
    assertS3Rules(log);
    // Finishing never streams the blob back: reads touch only the small tail segments.
    for (const get of log.filter((s) => s.command === 'GetObject')) {
      assert.match(get.key ?? '', /\/~uploads\/.*\/~seg-/, `GetObject of ${get.key}`);
      assert.ok((get.responseBytes ?? 0) < 5 * MiB);
    }
    assert.deepEqual(await sha256Of(await a.reader(key)), { digest: hash.digest('hex'), size: 20 * MiB });
    await a.delete('uploads');
  });

  it('keeps uneven PATCHes and one big streamed PATCH within the rules', async () => {
    const key = 'uploads/uneven/data';
    const hash = createHash('sha256');
    let offset = 0;
    const sizes = [...Array.from({ length: 9 }, () => 700 * 1024 + 13), 17 * MiB + 5, 1, 3 * MiB, 2];
    let checkpoint: WriterCheckpoint | undefined;
    for (const [i, size] of sizes.entries()) {
      const writer = await (i % 2 === 0 ? b : a).writer(key, checkpoint === undefined ? {} : { resume: checkpoint });
      await writer.write(patternStream(offset, size, hash));
      offset += size;
      if (i === sizes.length - 1) await writer.commit();
      else checkpoint = await writer.close();
    }
    const parts = completedPartSizes(log);
    assert.equal(
      parts.reduce((x, y) => x + y, 0),
      offset,
    );
    assert.ok(
      parts.slice(0, -1).every((p) => p === 5 * MiB),
      `parts ${parts.join(',')}`,
    );
    assertS3Rules(log);
    assert.deepEqual(await sha256Of(await b.reader(key)), { digest: hash.digest('hex'), size: offset });
    await a.delete('uploads');
  });

  it('streams one 23 MiB PATCH as 5 MiB parts plus the remainder', async () => {
    const key = 'uploads/stream/data';
    const writer = await a.writer(key, {});
    await writer.write(patternStream(0, 23 * MiB + 1));
    await writer.commit();
    assert.deepEqual(completedPartSizes(log), [5 * MiB, 5 * MiB, 5 * MiB, 5 * MiB, 3 * MiB + 1]);
    assert.deepEqual(
      log.filter((s) => s.command === 'PutObject').map((s) => s.key),
      [],
      'no temporary objects (segment, state or lease) for one PATCH',
    );
    assertS3Rules(log);
    await a.delete('uploads');
  });

  it('grows parts to stay within the part count (limits scaled down: 3 parts, 30 MiB objects)', async () => {
    const limits = { ...S3_LIMITS, maxParts: 3, maxPartSize: 20 * MiB, maxObjectSize: 30 * MiB };
    const small = createS3Driver(server.config({ prefix: 'rec', partSizeBytes: 5 * MiB }), { limits });
    record(small.client, log);
    const hash = createHash('sha256');
    const writer = await small.writer('grow/data', {});
    await writer.write(patternStream(0, 33 * MiB, hash));
    await writer.commit();
    assert.deepEqual(completedPartSizes(log), [5 * MiB, 10 * MiB, 18 * MiB]);
    assertS3Rules(log, limits);
    assert.deepEqual(await sha256Of(await a.reader('grow/data')), { digest: hash.digest('hex'), size: 33 * MiB });

    // Past what the parts can hold, the writer refuses instead of sending a 4th part.
    log.length = 0;
    const tooBig = await small.writer('grow/too-big', {});
    await assert.rejects(tooBig.write(patternStream(0, 36 * MiB)), /exceeds 3 parts/);
    await tooBig.cancel();
    assert.ok(log.every((s) => s.command !== 'UploadPart' || (s.partNumber ?? 0) <= 3));
    await small.delete('grow');
    await small.close();
  });

  it('moves with one CopyObject up to the copy limit', async () => {
    const writer = await a.writer('copy/small', {});
    await writer.write(patternStream(0, 6 * MiB));
    await writer.commit();
    log.length = 0;
    await b.move('copy/small', 'copy/moved');
    assert.deepEqual(
      log.map((s) => s.command),
      ['HeadObject', 'CopyObject', 'DeleteObject'],
    );
    assertS3Rules(log);
    assert.equal((await a.stat('copy/moved')).size, 6 * MiB);
    await a.delete('copy');
  });

  it('copies objects over the copy limit in UploadPartCopy ranges (limit lowered to 8 MiB)', async () => {
    const limited = createS3Driver(server.config({ prefix: 'rec' }), { limits: { maxCopySize: 8 * MiB } });
    record(limited.client, log);
    const writer = await limited.writer('copy/big', {});
    await writer.write(patternStream(0, 20 * MiB));
    await writer.commit();
    log.length = 0;

    // s3rver answers UploadPartCopy with NotImplemented; real S3 would complete the copy.
    await assert.rejects(limited.move('copy/big', 'copy/target'), StorageUnavailableError);
    const commands = log.map((s) => s.command);
    assert.deepEqual(commands.slice(0, 2), ['HeadObject', 'CreateMultipartUpload']);
    assert.ok(!commands.includes('CopyObject'), 'no single copy over the limit');
    const copies = log.filter((s) => s.command === 'UploadPartCopy');
    assert.deepEqual(
      copies.map((s) => [s.partNumber, s.copyRange]),
      [
        [1, `bytes=0-${8 * MiB - 1}`],
        [2, `bytes=${8 * MiB}-${16 * MiB - 1}`],
        [3, `bytes=${16 * MiB}-${20 * MiB - 1}`],
      ],
    );
    assert.ok(copies.every((s) => s.copySource === `${server.bucket}/rec/copy/big` && s.key === 'rec/copy/target'));
    assertS3Rules(log, { ...S3_LIMITS, maxCopySize: 8 * MiB });
    assert.equal(commands.at(-1), 'AbortMultipartUpload', 'the failed copy is aborted');
    assert.equal((await a.stat('copy/big')).size, 20 * MiB, 'the source survives a failed move');
    await assert.rejects(a.stat('copy/target'), BlobNotFoundError);
    await limited.delete('copy');
    await limited.close();
    assert.deepEqual(await rawKeys(a.client, server.bucket), []);
  });

  it('deletes many keys with DeleteObjects in Quiet batches of at most 1000, each with its Content-MD5', async () => {
    const keys = Array.from({ length: 2501 }, (_, i) => `gc/blobs/${i.toString().padStart(4, '0')}`);
    const stored = [keys[0], keys[999], keys[1000], keys[2500]] as string[];
    for (const key of stored) await a.put(key, Buffer.from(key));
    log.length = 0;
    const result = await a.deleteMany(keys);
    assert.deepEqual(result, { deleted: keys, failed: [] });
    const batches = log.filter((s) => s.command === 'DeleteObjects');
    assert.deepEqual(
      log.map((s) => s.command),
      ['DeleteObjects', 'DeleteObjects', 'DeleteObjects'],
      'one request per batch, nothing else',
    );
    assert.deepEqual(
      batches.map((s) => s.deleteKeys?.length),
      [1000, 1000, 501],
    );
    assert.deepEqual(
      batches.flatMap((s) => s.deleteKeys ?? []),
      keys.map((key) => `rec/${key}`),
      'every key once, under the prefix',
    );
    for (const batch of batches) {
      assert.equal(batch.quiet, true);
      // checksum 'when_required' (the default): what every S3-compatible store accepts, no CRC32 header.
      assert.ok(batch.bodyMd5 !== undefined);
      assert.deepEqual(batch.checksumHeaders, { 'content-md5': batch.bodyMd5 });
    }
    assert.deepEqual(await rawKeys(a.client, server.bucket), []);
  });

  it("keeps the SDK's CRC32 header on DeleteObjects with checksum 'when_supported'", async () => {
    const crc = createS3Driver(server.config({ prefix: 'rec', checksum: 'when_supported' }));
    record(crc.client, log);
    await crc.put('gc/one', Buffer.from('1'));
    log.length = 0;
    assert.deepEqual(await crc.deleteMany(['gc/one', 'gc/two']), { deleted: ['gc/one', 'gc/two'], failed: [] });
    const [batch] = log.filter((s) => s.command === 'DeleteObjects');
    assert.deepEqual(Object.keys(batch?.checksumHeaders ?? {}).sort(), ['x-amz-checksum-crc32', 'x-amz-sdk-checksum-algorithm']);
    await crc.close();
    assert.deepEqual(await rawKeys(a.client, server.bucket), []);
  });

  it('cancels with AbortMultipartUpload (tolerated when unsupported) and removes temporary objects', async () => {
    const writer = await a.writer('cancel/data', {});
    await writer.write(patternStream(0, 7 * MiB));
    const checkpoint = await writer.close();
    const resumed = await b.writer('cancel/data', { resume: checkpoint });
    await resumed.cancel();
    const abort = log.find((s) => s.command === 'AbortMultipartUpload');
    assert.ok(abort?.uploadId !== undefined && abort.key === 'rec/cancel/data');
    assert.equal(abort.error, 'MethodNotAllowed', 's3rver lacks AbortMultipartUpload');
    assert.deepEqual(await rawKeys(a.client, server.bucket), []);
  });
});
