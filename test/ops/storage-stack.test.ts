// The storage stack tests run on is the one `berth serve` runs on: driver behind instrument, store
// behind its instrumentation and the journal (server/storage-stack.ts).
import assert from 'node:assert/strict';
import { link, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { parseConfig } from '../../server/config.js';
import { startServer, type Server } from '../../server/main.js';
import type { MetadataObservation } from '../../server/operations/metrics.js';
import {
  blobKey,
  digestOfJournalPath,
  journalBlobKey,
  journalManifestKey,
  journalTagKey,
  parseBlobKey,
  parseJournalDigestPath,
  parseJournalKey,
} from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { buildStorageStack } from '../../server/storage-stack.js';
import type { BlobOperation } from '../../storage-drivers/blob/instrumented.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { BlobNotFoundError, InvalidKeyError } from '../../storage-drivers/blob/types.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry } from '../helpers/registry.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

const LINK = { digest: `sha256:${'ab'.repeat(32)}`, size: 3 };

describe('storage stack', () => {
  let scratch: ScratchDir;
  before(async () => {
    scratch = await makeScratchDir('stack');
  });
  after(async () => {
    await scratch.remove();
  });

  it('the test registry runs on it: storage and metadata calls are observed, a manifest PUT is journaled', async () => {
    const storage: BlobOperation[] = [];
    const metadata: MetadataObservation[] = [];
    const reg = await startTestRegistry({ observers: { storage: (o) => storage.push(o), metadata: (o) => metadata.push(o) } });
    try {
      const { manifest, layers } = await new RegistryClient(reg.url).pushImage('team/app', 'v1');
      assert.ok(
        storage.some((o) => o.driver === 'memory' && o.op === 'writer.commit'),
        'the upload went through instrument',
      );
      assert.ok(
        metadata.some((o) => o.op === 'putManifest'),
        'putManifest went through the store instrumentation',
      );
      // Read from the bare driver underneath: the records are really in storage.
      const record = JSON.parse((await reg.driver.get(journalManifestKey('team/app', manifest.digest))).toString()) as { digest: string };
      assert.equal(record.digest, manifest.digest);
      assert.equal((await reg.driver.get(journalTagKey('team/app', 'v1'))).toString(), manifest.digest);
      assert.ok(await reg.driver.get(journalBlobKey('team/app', layers[0]!.digest)));
      await assert.rejects(reg.storage.driver.stat('../escape'), InvalidKeyError);
    } finally {
      await reg.close();
    }
  });

  it('a re-tag keeps the stored manifest bytes and journal record and writes only the new tag entry', async () => {
    const reg = await startTestRegistry({ driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }) });
    try {
      const client = new RegistryClient(reg.url);
      const { manifest, layers } = await client.pushImage('team/kept', 'v1');
      const fileOf = (key: string) => join(reg.dir, 'storage', ...key.split('/'));
      const kept = [blobKey(parseDigest(manifest.digest)), journalManifestKey('team/kept', manifest.digest), journalBlobKey('team/kept', layers[0]!.digest)];
      // Hard links hold the first files' inodes, so a replaced file cannot get the same number back.
      const probes = kept.map((_, i) => join(reg.dir, `probe-${i}`));
      await Promise.all(kept.map((key, i) => link(fileOf(key), probes[i]!)));
      const inodes = await Promise.all(probes.map(async (probe) => (await stat(probe)).ino));
      assert.equal((await client.pushManifest('team/kept', 'v2', manifest)).status, 201);
      assert.equal((await client.pushManifest('team/kept', 'v1', manifest)).status, 201);
      await client.pushBlob('team/kept', layers[0]!);
      assert.deepEqual(await Promise.all(kept.map(async (key) => (await stat(fileOf(key))).ino)), inodes, 'not written again');
      assert.equal((await reg.driver.get(journalTagKey('team/kept', 'v2'))).toString(), manifest.digest);
    } finally {
      await reg.close();
    }
  });

  it('buildStorageStack over a configuration: instrumented driver, journaled metadata, an unjournaled store for rebuild', async () => {
    const storage: BlobOperation[] = [];
    const config = parseConfig({ dataDir: join(scratch.path, 'built'), log: { level: 'silent' } });
    const stack = await buildStorageStack(config, { storage: (o) => storage.push(o) });
    try {
      await assert.rejects(stack.driver.get('a/../b'), InvalidKeyError);
      assert.deepEqual(storage.at(-1), { ...storage.at(-1), driver: 'filesystem', op: 'get', error: 'InvalidKeyError' });

      await stack.metadata.linkBlob('journaled', LINK);
      assert.deepEqual(JSON.parse((await stack.driver.get(journalBlobKey('journaled', LINK.digest))).toString()), LINK);
      assert.ok(
        storage.some((o) => o.op === 'put'),
        'the journal writes through the instrumented driver',
      );

      await stack.store.linkBlob('plain', LINK);
      assert.deepEqual(await stack.metadata.getBlobLink('plain', LINK.digest), LINK);
      await assert.rejects(stack.driver.get(journalBlobKey('plain', LINK.digest)), BlobNotFoundError);
    } finally {
      await stack.close();
    }
  });

  describe('berth serve (startServer)', () => {
    let server: Server;
    let dataDir: string;
    before(async () => {
      dataDir = join(scratch.path, 'serve');
      const file = join(scratch.path, 'serve.yaml');
      await writeFile(file, stringify({ dataDir, http: { host: '127.0.0.1', port: 0 }, log: { level: 'silent', access: false }, audit: { enabled: false } }));
      server = await startServer({ configFile: file });
    });
    after(async () => {
      await server.stop();
    });

    it('reports storage and metadata operations and journals to its storage directory', async () => {
      const client = new RegistryClient(server.url);
      const { manifest } = await client.pushImage('team/served', 'latest');
      const text = await (await client.fetch('/metrics')).text();
      assert.match(text, /^berth_storage_operation_duration_seconds_count\{driver="filesystem",op="put"\} \d+$/m);
      assert.match(text, /^berth_metadata_operation_duration_seconds_count\{store="[^"]+",op="putManifest"\} 1$/m);
      const journaled = join(dataDir, 'storage', ...journalManifestKey('team/served', manifest.digest).split('/'));
      assert.equal((JSON.parse(await readFile(journaled, 'utf8')) as { digest: string }).digest, manifest.digest);
    });
  });
});

describe('key layout (server/registry/keys.ts)', () => {
  const digest = parseDigest(LINK.digest);

  it('parses back every key it builds', () => {
    assert.deepEqual(parseBlobKey(blobKey(digest)), { algorithm: 'sha256', hex: digest.hex });
    assert.equal(parseBlobKey(`${blobKey(digest)}.tmp`), undefined);
    for (const [key, kind] of [
      [journalBlobKey('a/b', digest.value), 'blobs'],
      [journalManifestKey('a/b', digest.value), 'manifests'],
    ] as const) {
      const entry = parseJournalKey(key);
      assert.deepEqual(entry && { repo: entry.repo, kind: entry.kind }, { repo: 'a/b', kind });
      assert.equal(digestOfJournalPath(entry?.rest ?? ''), digest.value);
      assert.deepEqual(parseJournalDigestPath(entry?.rest ?? ''), { algorithm: 'sha256', hex: digest.hex });
    }
    assert.deepEqual(parseJournalKey(journalTagKey('a/b', 'v1.0')), { repo: 'a/b', kind: 'tags', rest: 'v1.0' });
    assert.equal(parseJournalKey('journal/repositories/a/b'), undefined);
    assert.equal(parseJournalKey(blobKey(digest)), undefined);
  });
});
