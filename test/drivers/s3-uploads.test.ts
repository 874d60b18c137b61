// S3-specific behaviour on a real S3-compatible server (s3rver over HTTP): uploads spread over many
// PATCH-like writers and two driver instances ("processes"), big streams, restarts, crash sweeps,
// presigned redirects, start-up checks and error mapping.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { s3ConfigSchema } from '../../storage-drivers/blob/s3-config.js';
import { checkS3Startup, createS3Driver, type S3BlobDriver } from '../../storage-drivers/blob/s3.js';
import { StorageUnavailableError, type WriterCheckpoint } from '../../storage-drivers/blob/types.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';
import { digestOfStreams, MiB, patternStream, rawKeys, sha256Of } from './s3-fixtures.js';

describe('S3 driver on s3rver', () => {
  let server: S3rverHandle;
  let a: S3BlobDriver;
  let b: S3BlobDriver;

  before(async () => {
    server = await startS3rver();
    a = createS3Driver(server.config({ prefix: 'berth' }));
    b = createS3Driver(server.config({ prefix: 'berth' }));
  });
  after(async () => {
    await a.close();
    await b.close();
    await server.stop();
  });

  const raw = (): Promise<string[]> => rawKeys(a.client, server.bucket);

  it('assembles 24 separate 1 MiB PATCHes from two processes into the exact blob', async () => {
    const key = 'uploads/many/data';
    const hash = createHash('sha256');
    const count = 24;
    let checkpoint: WriterCheckpoint | undefined;
    for (let i = 0; i < count; i++) {
      const driver = i % 2 === 0 ? a : b;
      const writer = await driver.writer(key, checkpoint === undefined ? {} : { resume: checkpoint });
      assert.equal(writer.size, i * MiB, `PATCH ${i} resumes at the checkpoint's size`);
      assert.equal(await writer.write(patternStream(i * MiB, MiB, hash)), MiB);
      checkpoint = await writer.close();
      assert.equal(checkpoint.size, (i + 1) * MiB);
    }
    const last = await b.writer(key, { resume: checkpoint as WriterCheckpoint });
    assert.equal(last.size, count * MiB);
    await last.commit();
    assert.deepEqual(await sha256Of(await a.reader(key)), { digest: hash.digest('hex'), size: count * MiB });
    assert.deepEqual(await raw(), ['berth/uploads/many/data'], 'no state, segment or temporary object is left');
    await a.delete('uploads');
  });

  it('streams one 64 MiB write and reads it back byte for byte', { timeout: 60_000 }, async () => {
    const key = 'uploads/big/data';
    const hash = createHash('sha256');
    const writer = await a.writer(key, {});
    assert.equal(await writer.write(patternStream(0, 64 * MiB + 5, hash)), 64 * MiB + 5);
    await writer.commit();
    const expected = hash.digest('hex');
    assert.equal((await b.stat(key)).size, 64 * MiB + 5);
    assert.deepEqual(await sha256Of(await b.reader(key)), { digest: expected, size: 64 * MiB + 5 });
    const tail = await sha256Of(await b.reader(key, { start: 60 * MiB + 3 }));
    assert.equal(tail.size, 4 * MiB + 2);
    await a.move(key, 'blobs/big');
    assert.deepEqual(await sha256Of(await b.reader('blobs/big')), { digest: expected, size: 64 * MiB + 5 });
    await a.delete('blobs');
    assert.deepEqual(await raw(), []);
  });

  it('continues after a restart from the checkpoint, and a crashed writer loses only what it never closed', async () => {
    const key = 'uploads/restart/data';
    const first = createS3Driver(server.config({ prefix: 'berth' }));
    const writer = await first.writer(key, {});
    await writer.write(patternStream(0, 12 * MiB + 11));
    // What the upload session stores; the bucket holds no state or lease object of its own.
    const checkpoint = await writer.close();
    await first.close();

    assert.equal(checkpoint.size, 12 * MiB + 11);
    const state = JSON.parse(checkpoint.state ?? assert.fail('no S3 state in the checkpoint')) as {
      uploadId?: string;
      parts: { size: number }[];
      segments: { key: string; size: number }[];
    };
    assert.ok(state.uploadId, 'the multipart upload id travels in the checkpoint');
    assert.deepEqual(
      state.parts.map((p) => p.size),
      [5 * MiB, 5 * MiB],
    );
    assert.deepEqual(
      state.segments.map((s) => s.size),
      [2 * MiB + 11],
    );
    assert.deepEqual(
      await raw(),
      state.segments.map((s) => s.key),
      'only the tail segment is in the bucket',
    );

    // A second process resumes, writes past a part boundary, then dies without close().
    const crashing = createS3Driver(server.config({ prefix: 'berth' }));
    const lost = await crashing.writer(key, { resume: checkpoint });
    await lost.write(patternStream(0, 7 * MiB));
    await crashing.close();

    // The next process resumes from the last stored checkpoint and overwrites the crashed writer's part.
    const restarted = createS3Driver(server.config({ prefix: 'berth' }));
    const resumed = await restarted.writer(key, { resume: checkpoint });
    assert.equal(resumed.size, 12 * MiB + 11);
    await resumed.write(patternStream(12 * MiB + 11, 9 * MiB));
    await resumed.commit();
    await restarted.close();
    const expected = await digestOfStreams([patternStream(0, 12 * MiB + 11), patternStream(12 * MiB + 11, 9 * MiB)]);
    assert.deepEqual(await sha256Of(await a.reader(key)), { digest: expected, size: 21 * MiB + 11 });
    await a.delete('uploads');
    assert.deepEqual(await raw(), []);
  });

  async function collectStream(stream: NodeJS.ReadableStream): Promise<Buffer[]> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return chunks;
  }

  it('keeps parts already sent when a long write is aborted, and resumes after them', async () => {
    const key = 'uploads/aborted/data';
    const controller = new AbortController();
    let produced = 0;
    const src = patternStream(0, 64 * MiB).pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          produced += chunk.length;
          if (produced >= 12 * MiB) controller.abort();
          done(null, chunk);
        },
      }),
    );
    const writer = await a.writer(key, {});
    await assert.rejects(writer.write(src, controller.signal), { name: 'AbortError' });
    const kept = writer.size;
    assert.ok(kept >= 10 * MiB && kept <= 13 * MiB, `kept ${kept}`);
    const checkpoint = await writer.close();
    assert.equal(checkpoint.size, kept);
    const resumed = await b.writer(key, { resume: checkpoint });
    assert.equal(resumed.size, kept);
    await resumed.write(patternStream(kept, MiB));
    await resumed.commit();
    const stored = await a.get(key);
    assert.equal(stored.length, kept + MiB);
    assert.ok(stored.subarray(0, kept).equals(Buffer.concat(await collectStream(patternStream(0, kept)))), 'bytes kept across the abort are what was sent');
    assert.ok(stored.subarray(kept).equals(Buffer.concat(await collectStream(patternStream(kept, MiB)))));
    await a.delete('uploads');
  });

  it('sweeps in-progress objects and orphans older than the cutoff that no session owns', async () => {
    const stale = await a.writer('sweep/stale', {});
    await stale.write(patternStream(0, 6 * MiB));
    const staleCheckpoint = await stale.close();
    const nested = await a.writer('sweep/stale/nested', {});
    await nested.write(patternStream(0, 10));
    await nested.close();
    await a.client.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'berth/~uploads/sweep/orphan/~seg-000000000000000-abc', Body: 'x' }));
    await a.put('sweep/committed', Buffer.from('kept'));
    // Owned by a live session: as old as the rest, but never swept.
    const owned = await a.writer('sweep/owned', {});
    await owned.write(patternStream(0, 20));
    const ownedCheckpoint = await owned.close();
    const ownedRaw = (await raw()).filter((key) => key.startsWith('berth/~uploads/sweep/owned/'));
    assert.equal(ownedRaw.length, 1, 'the owned object has its tail segment');
    // A long PATCH still streaming (a part sent, one byte buffered): its session is live.
    const streaming = await b.writer('sweep/streaming', {});
    await streaming.write(patternStream(0, 5 * MiB + 1));
    const live = new Set(['sweep/owned', 'sweep/streaming']);
    const asked: string[] = [];
    const isLive = async (key: string): Promise<boolean> => {
      asked.push(key);
      return live.has(key);
    };

    assert.equal(await a.sweep(new Date(Date.now() - 3_600_000), async () => false), 0, 'recent uploads are kept');
    assert.equal((await a.writer('sweep/stale', { resume: staleCheckpoint })).size, 6 * MiB);

    assert.equal(await b.sweep(new Date(Date.now() + 3_600_000), isLive), 3, 'stale, nested and orphan');
    assert.ok(asked.includes('sweep/owned'), `isLive asked about ${JSON.stringify(asked)}`);
    assert.deepEqual(await raw(), ['berth/sweep/committed', ...ownedRaw].sort());
    const resumedOwned = await b.writer('sweep/owned', { resume: ownedCheckpoint });
    assert.equal(resumedOwned.size, 20);
    await resumedOwned.commit();
    assert.deepEqual(await sha256Of(await a.reader('sweep/owned')), await sha256Of(patternStream(0, 20)));
    await streaming.write(patternStream(5 * MiB + 1, 10));
    await streaming.commit();
    const streamed = await digestOfStreams([patternStream(0, 5 * MiB + 1), patternStream(5 * MiB + 1, 10)]);
    assert.deepEqual(await sha256Of(await a.reader('sweep/streaming')), { digest: streamed, size: 5 * MiB + 11 });
    await a.delete('sweep');
    assert.deepEqual(await raw(), []);
  });

  it('retries a streamed part that meets a 503, with a fresh body', async () => {
    const flaky = createS3Driver(server.config({ prefix: 'berth', maxAttempts: 3 }));
    const attempts: number[] = [];
    // Fault injection below the SDK's retry layer: the first attempt at part 1 fails as S3 would.
    flaky.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { PartNumber?: number };
        if (context.commandName === 'UploadPartCommand') {
          attempts.push(input.PartNumber ?? 0);
          if (input.PartNumber === 1 && attempts.filter((n) => n === 1).length === 1) {
            throw Object.assign(new Error('injected'), { name: 'SlowDown', $fault: 'server', $metadata: { httpStatusCode: 503 } });
          }
        }
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'injectSlowDown' },
    );
    const first = await flaky.writer('retry/data', {});
    await first.write(patternStream(0, 3 * MiB));
    const checkpoint = await first.close();
    // Part 1 is the stored 3 MiB segment plus 2 MiB from memory: both must be sent again.
    const second = await flaky.writer('retry/data', { resume: checkpoint });
    await second.write(patternStream(3 * MiB, 8 * MiB));
    await second.commit();
    assert.deepEqual(attempts, [1, 1, 2, 3]);
    const expected = await digestOfStreams([patternStream(0, 3 * MiB), patternStream(3 * MiB, 8 * MiB)]);
    assert.deepEqual(await sha256Of(await a.reader('retry/data')), { digest: expected, size: 11 * MiB });
    await a.delete('retry');
    await flaky.close();
  });

  it('falls back to the stored parts when a part fails, so the client resumes from there', async () => {
    const flaky = createS3Driver(server.config({ prefix: 'berth' }));
    let failPart: number | undefined;
    flaky.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { PartNumber?: number };
        if (context.commandName === 'UploadPartCommand' && input.PartNumber === failPart) {
          failPart = undefined;
          throw Object.assign(new Error('injected'), { name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 } });
        }
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'injectPartFailure' },
    );
    const key = 'failing/data';
    const first = await flaky.writer(key, {});
    await first.write(patternStream(0, 3 * MiB));
    const cp1 = await first.close();

    // Part 1 would absorb the stored 3 MiB segment: after its failure the segment is all that is kept.
    failPart = 1;
    const second = await flaky.writer(key, { resume: cp1 });
    await assert.rejects(second.write(patternStream(3 * MiB, 20 * MiB)), StorageUnavailableError);
    assert.equal(second.size, 3 * MiB);
    await assert.rejects(second.write(patternStream(3 * MiB, 1)), StorageUnavailableError, 'a failed writer takes no more');
    const cp2 = await second.close();
    assert.equal(cp2.size, 3 * MiB, 'the checkpoint falls back to the stored bytes');

    // Part 3 fails after parts 1 and 2 landed: 10 MiB are kept.
    failPart = 3;
    const third = await flaky.writer(key, { resume: cp2 });
    assert.equal(third.size, 3 * MiB);
    await assert.rejects(third.write(patternStream(3 * MiB, 20 * MiB)), StorageUnavailableError);
    assert.equal(third.size, 10 * MiB);
    const cp3 = await third.close();
    assert.equal(cp3.size, 10 * MiB);

    const last = await a.writer(key, { resume: cp3 });
    assert.equal(last.size, 10 * MiB);
    await last.write(patternStream(10 * MiB, 2 * MiB + 5));
    await last.commit();
    const expected = await digestOfStreams([patternStream(0, 3 * MiB), patternStream(3 * MiB, 7 * MiB), patternStream(10 * MiB, 2 * MiB + 5)]);
    assert.deepEqual(await sha256Of(await a.reader(key)), { digest: expected, size: 12 * MiB + 5 });
    await a.delete('failing');
    assert.deepEqual(await raw(), []);
    await flaky.close();
  });

  it('leaves the upload resumable when commit fails', async () => {
    const flaky = createS3Driver(server.config({ prefix: 'berth' }));
    const failOnce = new Set(['CompleteMultipartUploadCommand', 'PutObjectCommand']);
    flaky.client.middlewareStack.add(
      (next, context) => async (args) => {
        const command = String(context.commandName);
        const target = (args.input as { Key?: string }).Key ?? '';
        if (failOnce.has(command) && !target.includes('~')) {
          failOnce.delete(command);
          throw Object.assign(new Error('injected'), { name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 } });
        }
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'injectDenied' },
    );
    for (const [key, size] of [
      ['commit/multipart', 7 * MiB + 3],
      ['commit/single', 3 * MiB + 1],
    ] as const) {
      const writer = await flaky.writer(key, {});
      await writer.write(patternStream(0, size - 10));
      const first = await writer.close();
      const last = await flaky.writer(key, { resume: first });
      await last.write(patternStream(size - 10, 10));
      await assert.rejects(last.commit(), StorageUnavailableError);
      const checkpoint = await last.close();
      assert.equal(checkpoint.size, size);
      const retry = await flaky.writer(key, { resume: checkpoint });
      assert.equal(retry.size, size);
      await retry.commit();
      const expected = await digestOfStreams([patternStream(0, size - 10), patternStream(size - 10, 10)]);
      assert.deepEqual(await sha256Of(await a.reader(key)), { digest: expected, size });
    }
    assert.equal(failOnce.size, 0, 'both commit paths met a failure');
    await a.delete('commit');
    assert.deepEqual(await raw(), []);
    await flaky.close();
  });

  it('pages through listings and batched deletes', async () => {
    const paged = createS3Driver(server.config({ prefix: 'berth' }), { batchSize: 3 });
    const keys = Array.from({ length: 10 }, (_, i) => `paged/dir${i % 3}/key${i}`).sort();
    for (const key of keys) await paged.put(key, Buffer.from(key));
    for (const key of ['paged/up/one', 'paged/up/two', 'paged/up/three', 'paged/up/four']) {
      const writer = await paged.writer(key, {});
      await writer.write(patternStream(0, 10));
      await writer.close();
    }
    const listed: string[] = [];
    for await (const key of paged.list('paged')) listed.push(key);
    assert.deepEqual(listed.sort(), keys);
    await paged.delete('paged');
    assert.deepEqual(await raw(), []);
    await paged.close();
  });

  it('hands out cached presigned URLs that fetch the blob', async () => {
    let now = 1_000_000;
    const config = server.config({ prefix: 'berth', redirect: { enabled: true, expiresSeconds: 600 } });
    const driver = createS3Driver(config, { now: () => now });
    let signed = 0;
    driver.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetObjectCommand') signed++;
        return next(args);
      },
      { step: 'initialize', name: 'countSigning' },
    );
    await driver.put('redirect/blob', Buffer.from('layer bytes'));

    const url = (await driver.redirectUrl('redirect/blob')) ?? assert.fail('no URL');
    assert.ok(url.startsWith(`${server.endpoint}/${server.bucket}/berth/redirect/blob?`), url);
    assert.match(url, /X-Amz-Expires=600/);
    assert.equal(Buffer.from(await (await fetch(url)).arrayBuffer()).toString(), 'layer bytes');
    for (let i = 0; i < 1000; i++) assert.equal(await driver.redirectUrl('redirect/blob'), url);
    assert.equal(signed, 1, 'a thousand pulls share one signature');

    now += 539_000;
    await driver.redirectUrl('redirect/blob');
    assert.equal(signed, 1, 'still reused shortly before the margin');
    now += 2_000;
    await driver.redirectUrl('redirect/blob');
    assert.equal(signed, 2, 're-signed before expiry');

    assert.equal(await a.redirectUrl('redirect/blob'), undefined, 'redirects are off by default');
    await driver.delete('redirect');
    await driver.close();
  });

  it('sends server-side encryption and storage class with committed objects only', async () => {
    const driver = createS3Driver(server.config({ prefix: 'berth', sse: 'AES256', storageClass: 'STANDARD_IA' }));
    const seen: { command: string; sse?: string | undefined; storageClass?: string | undefined }[] = [];
    driver.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { ServerSideEncryption?: string; StorageClass?: string };
        seen.push({ command: String(context.commandName), sse: input.ServerSideEncryption, storageClass: input.StorageClass });
        return next(args);
      },
      { step: 'initialize', name: 'recordParams' },
    );
    const writer = await driver.writer('sse/data', {});
    await writer.write(patternStream(0, 6 * MiB));
    const checkpoint = await writer.close();
    const resumed = await driver.writer('sse/data', { resume: checkpoint });
    await resumed.commit();
    await driver.put('sse/small', Buffer.from('x'));
    const of = (command: string) => seen.filter((s) => s.command === command);
    assert.ok(of('CreateMultipartUploadCommand').length > 0);
    assert.ok(of('CreateMultipartUploadCommand').every((s) => s.sse === 'AES256' && s.storageClass === 'STANDARD_IA'));
    // Temporary objects (segments) are encrypted but stay in the default class.
    const puts = of('PutObjectCommand');
    assert.equal(puts.length, 2, 'a segment and the small object');
    assert.ok(puts.every((s) => s.sse === 'AES256'));
    assert.deepEqual(
      puts.map((s) => s.storageClass),
      [undefined, 'STANDARD_IA'],
    );
    assert.equal((await driver.stat('sse/data')).size, 6 * MiB);
    await driver.delete('sse');
    await driver.close();
  });

  it('refuses to start with a message naming the endpoint and bucket', async () => {
    await assert.rejects(checkS3Startup(server.config({ bucket: 'no-such-bucket' })), (err: Error) => {
      assert.ok(err instanceof StorageUnavailableError);
      assert.match(err.message, /no-such-bucket/);
      assert.ok(err.message.includes(server.endpoint), err.message);
      assert.match(err.message, /does not exist/);
      return true;
    });
    await assert.rejects(checkS3Startup(server.config({ credentials: { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' } })), (err: Error) => {
      assert.ok(err.message.includes(server.bucket) && err.message.includes(server.endpoint), err.message);
      assert.match(err.message, /access denied/);
      return true;
    });
    const closed = await startS3rver();
    const unreachable = closed.config({ maxAttempts: 1, connectTimeoutMs: 2_000 });
    await closed.stop();
    await assert.rejects(checkS3Startup(unreachable), (err: Error) => {
      assert.ok(err.message.includes(closed.endpoint) && err.message.includes(closed.bucket), err.message);
      assert.match(err.message, /unreachable/);
      return true;
    });
    await checkS3Startup(server.config());
  });

  it('maps a dead backend to StorageUnavailableError before any byte is read', async () => {
    const doomed = await startS3rver();
    const driver = createS3Driver(doomed.config({ maxAttempts: 1 }));
    await driver.put('x/blob', Buffer.from('data'));
    await doomed.stop();
    for (const call of [
      () => driver.reader('x/blob'),
      () => driver.stat('x/blob'),
      () => driver.get('x/blob'),
      () => driver.writer('x/new', {}),
      () => driver.ping(),
    ]) {
      await assert.rejects(call(), StorageUnavailableError);
    }
    await driver.close();
  });
});

describe('S3 configuration', () => {
  it('applies defaults and rejects unknown or inconsistent settings', () => {
    const config = s3ConfigSchema.parse({ bucket: 'b' });
    assert.equal(config.checksum, 'when_required');
    assert.equal(config.partSizeBytes, 8 * MiB);
    assert.deepEqual(config.redirect, { enabled: false, expiresSeconds: 1200 });
    assert.equal(config.prefix, '');
    assert.throws(() => s3ConfigSchema.parse({ bucket: 'b', unknown: 1 }));
    assert.throws(() => s3ConfigSchema.parse({ bucket: 'b', redirect: { enabled: true, typo: 1 } }));
    assert.throws(() => s3ConfigSchema.parse({ bucket: 'b', partSizeBytes: 5 * MiB - 1 }));
    assert.throws(() => s3ConfigSchema.parse({ bucket: 'b', kmsKeyId: 'k' }));
    assert.throws(() => s3ConfigSchema.parse({ bucket: 'b', prefix: '/x/' }));
    assert.throws(() => s3ConfigSchema.parse({ bucket: 'b', redirect: { expiresSeconds: 600, cacheSeconds: 600 } }));
    assert.equal(s3ConfigSchema.parse({ bucket: 'b', sse: 'aws:kms', kmsKeyId: 'k' }).kmsKeyId, 'k');
  });
});
