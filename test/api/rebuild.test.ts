import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { rebuildMetadata } from '../../server/registry/rebuild.js';
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
  const art = imageManifest(empty, [], { artifactType: 'application/vnd.example.sbom', subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: a.manifest.digest, size: a.manifest.size } });
  await c.pushManifest('team/api', art.digest, art);
  return {
    repos: ['team/api', 'team/web', 'other/repo'],
    manifests: [['team/api', 'v1'], ['team/api', 'latest'], ['team/api', 'v2'], ['team/api', b.manifest.digest], ['team/web', 'old'], ['team/api', art.digest]],
    blobs: [['team/api', layer], ['other/repo', layer], ['team/api', b.layers[0]?.digest as string], ['team/web', gone.layers[0]?.digest as string]],
    subject: a.manifest.digest,
  };
}

async function snapshot(c: RegistryClient, probe: Probe): Promise<Snapshot> {
  const get = async (p: string) => {
    const r = await c.fetch(p);
    return r.status === 200 ? r.json() : r.status;
  };
  const s: Snapshot = { catalog: await get('/v2/_catalog'), tags: {}, manifests: {}, blobs: {}, referrers: await get(`/v2/team/api/referrers/${probe.subject}`) };
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
