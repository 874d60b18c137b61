// The blob service decides what a GET sends; these pin which kind each driver and size gets, and
// that each kind carries the status, length and bytes the send helper puts on the wire.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { BlobService, type BlobContent } from '../../server/registry/blobs.js';
import { Integrity } from '../../server/registry/integrity.js';
import { GcUsage } from '../../server/registry/gc/usage.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import { blobKey } from '../../server/registry/keys.js';
import { digestOf, parseDigest, type ParsedDigest } from '../../server/registry/references.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

function testUsage(metadata: MetadataStore): GcUsage {
  return new GcUsage(metadata, { delayMs: 0, pinMs: 60_000, untaggedAgeMs: undefined, deletingWaitMs: 0, now: Date.now });
}

const SMALL = Buffer.from('{"small":"config"}');
const LARGE = Buffer.alloc(200 * 1024, 'layer bytes ');

async function drain(readable: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of readable) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** The bytes a content of kind sender or stream produces. */
async function bytesOf(content: BlobContent): Promise<Buffer> {
  if (content.kind === 'stream') return drain(await content.open(new AbortController().signal));
  if (content.kind === 'sender') {
    const sink = new PassThrough();
    const collected = drain(sink);
    try {
      await content.sender.sendTo(sink, new AbortController().signal);
      sink.end();
    } finally {
      await content.sender.close();
    }
    return collected;
  }
  assert.fail(`no bytes to read from a ${content.kind}`);
}

for (const [label, makeDriver, bodyKind] of [
  ['filesystem', (dir: string) => new FilesystemDriver({ root: join(dir, 'blobs') }), 'sender'],
  ['memory', () => new MemoryDriver(), 'stream'],
] as const) {
  describe(`blob content kinds (${label})`, () => {
    let scratch: ScratchDir;
    let driver: BlobDriver;
    let metadata: EmbeddedStore;
    let blobs: BlobService;
    let small: ParsedDigest;
    let large: ParsedDigest;

    before(async () => {
      scratch = await makeScratchDir('blob-content');
      driver = makeDriver(scratch.path);
      metadata = new EmbeddedStore({ path: join(scratch.path, 'metadata') });
      const integrity = new Integrity(driver, metadata, { verifyReads: 'always', smallBytes: 1024, rememberVerified: 0 });
      blobs = new BlobService(driver, metadata, integrity, testUsage(metadata));
      small = parseDigest(digestOf(SMALL));
      large = parseDigest(digestOf(LARGE));
      for (const [digest, data] of [
        [small, SMALL],
        [large, LARGE],
      ] as const) {
        await driver.put(blobKey(digest), data);
        await metadata.linkBlob('repo', { digest: digest.value, size: data.length });
      }
    });

    after(async () => {
      await metadata.close();
      await driver.close();
      await scratch.remove();
    });

    it('answers a small whole blob with its bytes in one buffer', async () => {
      const content = await blobs.content(small, SMALL.length, undefined, { redirect: false });
      assert.equal(content.kind, 'buffer');
      assert.ok(content.kind === 'buffer');
      assert.equal(content.status, 200);
      assert.equal(content.length, SMALL.length);
      assert.deepEqual(content.bytes, SMALL);
    });

    it(`sends a large whole blob through a ${bodyKind}, verified against its digest`, async () => {
      const content = await blobs.content(large, LARGE.length, undefined, { redirect: false });
      assert.equal(content.kind, bodyKind);
      assert.ok(content.kind === 'sender' || content.kind === 'stream');
      assert.deepEqual(
        { status: content.status, length: content.length, size: content.size, range: content.range },
        { status: 200, length: LARGE.length, size: LARGE.length, range: undefined },
      );
      assert.deepEqual(await bytesOf(content), LARGE);
    });

    it(`sends a range, even of a small blob, as a 206 through a ${bodyKind}`, async () => {
      const range = { start: 3, end: 9 };
      const content = await blobs.content(small, SMALL.length, range, { redirect: false });
      assert.equal(content.kind, bodyKind);
      assert.ok(content.kind === 'sender' || content.kind === 'stream');
      assert.deepEqual(
        { status: content.status, length: content.length, size: content.size, range: content.range },
        { status: 206, length: 7, size: SMALL.length, range },
      );
      assert.deepEqual(await bytesOf(content), SMALL.subarray(3, 10));
    });

    it('sends the bytes itself when redirects are on but the driver has no URL to give', async () => {
      const content = await blobs.content(large, LARGE.length, undefined, { redirect: true });
      assert.equal(content.kind, bodyKind);
      if (content.kind === 'sender') await content.sender.close();
    });
  });
}

describe('blob content kinds (s3 with redirects)', () => {
  let scratch: ScratchDir;
  let server: S3rverHandle;
  let driver: BlobDriver;
  let metadata: EmbeddedStore;
  let blobs: BlobService;
  const digest = parseDigest(digestOf(LARGE));

  before(async () => {
    scratch = await makeScratchDir('blob-content-s3');
    server = await startS3rver();
    driver = createS3Driver(server.config({ prefix: 'berth', redirect: { enabled: true, expiresSeconds: 600 } }));
    metadata = new EmbeddedStore({ path: join(scratch.path, 'metadata') });
    blobs = new BlobService(
      driver,
      metadata,
      new Integrity(driver, metadata, { verifyReads: 'always', smallBytes: 1024, rememberVerified: 0 }),
      testUsage(metadata),
    );
    await driver.put(blobKey(digest), LARGE);
    await metadata.linkBlob('repo', { digest: digest.value, size: LARGE.length });
  });

  after(async () => {
    await metadata.close();
    await driver.close();
    await server.stop();
    await scratch.remove();
  });

  it('sends the client to storage when redirects are on', async () => {
    const content = await blobs.content(digest, LARGE.length, undefined, { redirect: true });
    assert.ok(content.kind === 'redirect', content.kind);
    assert.deepEqual(Buffer.from(await (await fetch(content.location)).arrayBuffer()), LARGE);
  });

  it("sends through the driver's sender when the registry does not redirect, even where the driver could", async () => {
    const ranged = await blobs.content(digest, LARGE.length, { start: 0, end: 99 }, { redirect: false });
    assert.equal(ranged.kind, 'sender');
    assert.deepEqual(await bytesOf(ranged), LARGE.subarray(0, 100));
    const whole = await blobs.content(digest, LARGE.length, undefined, { redirect: false });
    assert.equal(whole.kind, 'sender');
    assert.deepEqual(await bytesOf(whole), LARGE);
  });
});
