import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { journalBlobKey, journalManifestKey, journalTagKey } from '../../server/registry/keys.js';
import { rebuildMetadata, type RebuildResult } from '../../server/registry/rebuild.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { createS3Driver } from '../../storage-drivers/blob/s3.js';
import type { BlobDriver } from '../../storage-drivers/blob/types.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import { blob, imageManifest, RegistryClient } from '../helpers/oci.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { startTestRegistry } from '../helpers/registry.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';
import { makeScratchDir } from '../helpers/scratch.js';

/** bin/berth.js, from dist/test/api/rebuild.test.js. */
const BERTH_BIN = fileURLToPath(new URL('../../../bin/berth.js', import.meta.url));

interface Snapshot {
  catalog: unknown;
  tags: Record<string, unknown>;
  manifests: Record<string, string | null>;
  blobs: Record<string, number>;
  referrers: unknown;
}

/** Which views of the registry a snapshot reads. */
interface Probe {
  repos: string[];
  manifests: Array<[string, string]>;
  blobs: Array<[string, string]>;
  subject: string;
}

/** Pushes a varied set of content, deletes some of it, and returns what to look at afterwards. */
async function populate(c: RegistryClient): Promise<Probe> {
  const a = await c.pushImage('team/api', 'v1', [100, 200]);
  await c.pushManifest('team/api', 'latest', a.manifest);
  const b = await c.pushImage('team/api', 'v2', [300]);
  await c.pushImage('team/web', 'v1', [50]);
  const gone = await c.pushImage('team/web', 'old', [10]);
  await c.fetch(`/v2/team/web/manifests/${gone.manifest.digest}`, { method: 'DELETE' });
  await c.fetch('/v2/team/api/manifests/v2', { method: 'DELETE' });
  const layer = a.layers[0]?.digest as string;
  const mounted = await c.fetch(`/v2/other/repo/blobs/uploads/?mount=${layer}&from=team/api`, { method: 'POST' });
  assert.equal(mounted.status, 201);
  const empty = blob('{}');
  await c.pushBlob('team/api', empty);
  const art = imageManifest(empty, [], {
    artifactType: 'application/vnd.example.sbom',
    subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: a.manifest.digest, size: a.manifest.size },
  });
  await c.pushManifest('team/api', art.digest, art);
  return {
    repos: ['team/api', 'team/web', 'other/repo'],
    manifests: [
      ['team/api', 'v1'],
      ['team/api', 'latest'],
      ['team/api', 'v2'],
      ['team/api', b.manifest.digest],
      ['team/web', 'old'],
      ['team/api', art.digest],
    ],
    blobs: [
      ['team/api', layer],
      ['other/repo', layer],
      ['team/api', b.layers[0]?.digest as string],
      ['team/web', gone.layers[0]?.digest as string],
    ],
    subject: a.manifest.digest,
  };
}

async function snapshot(c: RegistryClient, probe: Probe): Promise<Snapshot> {
  const get = async (p: string) => {
    const r = await c.fetch(p);
    return r.status === 200 ? r.json() : r.status;
  };
  const s: Snapshot = {
    catalog: await get('/v2/_catalog'),
    tags: {},
    manifests: {},
    blobs: {},
    referrers: await get(`/v2/team/api/referrers/${probe.subject}`),
  };
  for (const repo of probe.repos) s.tags[repo] = await get(`/v2/${repo}/tags/list`);
  for (const [repo, ref] of probe.manifests) {
    const r = await c.fetch(`/v2/${repo}/manifests/${ref}`);
    s.manifests[`${repo}:${ref}`] = r.status === 200 ? `${r.headers.get('content-type')} ${Buffer.from(await r.arrayBuffer()).toString('base64')}` : null;
  }
  for (const [repo, d] of probe.blobs) s.blobs[`${repo}@${d}`] = (await c.fetch(`/v2/${repo}/blobs/${d}`, { method: 'HEAD' })).status;
  return s;
}

async function rebuildRoundTrip(makeDriver: (dir: string) => BlobDriver, makeStore: (dir: string, round: number) => Promise<MetadataStore>): Promise<void> {
  let driverDir = '';
  const first = await startTestRegistry({
    driver: async (dir) => {
      driverDir = dir;
      return makeDriver(dir);
    },
    metadata: async (dir) => makeStore(dir, 0),
  });
  let probe: Probe;
  let before: Snapshot;
  try {
    const c = new RegistryClient(first.url);
    probe = await populate(c);
    before = await snapshot(c, probe);
  } finally {
    await first.app.close();
    await first.metadata.close();
  }
  // A new, empty metadata store over the same storage: rebuild, then the API must show the same.
  const fresh = await makeStore(driverDir, 1);
  const progress = await rebuildMetadata(first.driver, fresh);
  assert.ok(progress.manifests >= 3 && progress.tags >= 3 && progress.blobs >= 5, JSON.stringify(progress));
  const second = await startTestRegistry({ driver: async () => first.driver, metadata: async () => fresh });
  try {
    assert.deepEqual(await snapshot(new RegistryClient(second.url), probe), before);
  } finally {
    await second.close();
  }
}

describe('berth metadata rebuild', () => {
  let s3: S3rverHandle | undefined;
  let redis: RedisServer | undefined;
  after(async () => {
    await s3?.stop();
    await redis?.stop();
  });

  it('restores every tag, manifest, link and referrer into an emptied Redis (S3 storage)', async () => {
    s3 = await startS3rver();
    redis = await startRedisServer();
    const server = s3;
    const url = redis.url;
    const prefix = `rebuild-${randomBytes(4).toString('hex')}`;
    await rebuildRoundTrip(
      () => createS3Driver(server.config({ prefix })),
      async (_dir, round) => {
        const store = new RedisStore(redisConfigSchema.parse({ url, keyPrefix: `${prefix}-${round}:` }));
        await store.waitUntilReady(5000);
        return store;
      },
    );
  });

  it('restores an embedded store from filesystem storage', async () => {
    await rebuildRoundTrip(
      (dir) => new FilesystemDriver({ root: join(dir, 'storage') }),
      async (dir, round) => new EmbeddedStore({ path: join(dir, `metadata-${round}`) }),
    );
  });
});

describe('berth metadata rebuild over a journal with damaged entries', () => {
  it('restores every readable entry, names each bad one by its key, and the CLI exits non-zero with a summary', async () => {
    const scratch = await makeScratchDir('rebuild-bad');
    try {
      const storageRoot = join(scratch.path, 'storage');
      const driver = new FilesystemDriver({ root: storageRoot });
      const first = await startTestRegistry({
        driver: async () => driver,
        metadata: async () => new EmbeddedStore({ path: join(scratch.path, 'metadata-0') }),
      });
      const c = new RegistryClient(first.url);
      const api1 = await c.pushImage('team/api', 'v1', [100]);
      const api2 = await c.pushImage('team/api', 'v2', [200]);
      const web = await c.pushImage('team/web', 'v1', [300]);
      await first.app.close();
      await first.metadata.close();

      // A torn write (the first 24 bytes of a record, as the issue saw), a half-written blob link and a
      // tag file holding no digest, among good entries.
      const tornManifest = journalManifestKey('team/api', api2.manifest.digest);
      await driver.put(tornManifest, (await driver.get(tornManifest)).subarray(0, 24));
      const tornLink = journalBlobKey('team/web', web.layers[0]!.digest);
      await driver.put(tornLink, Buffer.from('{"digest":"sha256:'));
      const badTag = journalTagKey('team/web', 'broken');
      await driver.put(badTag, Buffer.from('not a digest'));
      const badKeys = [tornManifest, tornLink, badTag].sort();

      const fresh = new EmbeddedStore({ path: join(scratch.path, 'metadata-1') });
      const result = await rebuildMetadata(driver, fresh);
      assert.deepEqual(result.badEntries.map((b) => b.key).sort(), badKeys);
      assert.match(result.badEntries.find((b) => b.key === tornManifest)!.reason, /not valid JSON/);
      assert.deepEqual(result.skippedTags, [{ repository: 'team/api', tag: 'v2', digest: api2.manifest.digest }]);
      // Everything else: 2 manifests, 2 tags; links: api's config+layer twice over, web's config.
      assert.deepEqual({ manifests: result.manifests, tags: result.tags, blobs: result.blobs }, { manifests: 2, tags: 2, blobs: 5 });

      const second = await startTestRegistry({ driver: async () => driver, metadata: async () => fresh });
      try {
        const c2 = new RegistryClient(second.url);
        const status = async (path: string, method = 'GET') => (await c2.fetch(path, { method })).status;
        assert.equal(await status('/v2/team/api/manifests/v1'), 200);
        assert.equal(await status('/v2/team/web/manifests/v1'), 200);
        assert.equal(await status(`/v2/team/api/blobs/${api1.layers[0]!.digest}`, 'HEAD'), 200);
        assert.equal(await status(`/v2/team/api/blobs/${api2.layers[0]!.digest}`, 'HEAD'), 200);
        assert.equal(await status('/v2/team/api/manifests/v2'), 404);
        assert.equal(await status(`/v2/team/web/blobs/${web.layers[0]!.digest}`, 'HEAD'), 404);
      } finally {
        await second.app.close();
        await fresh.close();
      }

      // The CLI, as an operator runs it, into another empty store.
      const configFile = join(scratch.path, 'berth.yaml');
      await writeFile(
        configFile,
        stringify({
          log: { level: 'silent' },
          storage: { driver: 'filesystem', filesystem: { root: storageRoot } },
          metadata: { store: 'embedded', embedded: { path: join(scratch.path, 'metadata-2') } },
        }),
      );
      const run = await promisify(execFile)(process.execPath, [BERTH_BIN, 'metadata', 'rebuild', '--config', configFile], {
        env: { PATH: process.env.PATH ?? '' },
      }).then(
        () => ({ code: 0, stdout: '', stderr: '' }),
        (err: { code: number; stdout: string; stderr: string }) => err,
      );
      assert.equal(run.code, 1, run.stderr);
      for (const key of badKeys) assert.match(run.stderr, new RegExp(`unreadable journal entry ${key}: `));
      assert.match(run.stderr, /restored 2 manifests, 2 tags and 5 blob links in 2 repositories; 3 journal entries could not be read/);
      assert.match(run.stderr, /tag team\/api:v2 not restored/);
      const printed = JSON.parse(run.stdout) as RebuildResult;
      assert.equal(printed.badEntries.length, 3);
      assert.equal(printed.manifests, 2);
    } finally {
      await scratch.remove();
    }
  });
});
