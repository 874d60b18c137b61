// HEAD of a manifest by tag under a burst: concurrent lookups of one tag share metadata round trips
// (server/registry/lookup-coalescer.ts), and a push in another process is seen by the next HEAD.
// Two app instances on one real Redis, over real HTTP.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import type { ManifestRecord } from '../../storage-drivers/metadata/types.js';
import { blob, imageManifest, RegistryClient, type Blob } from '../helpers/oci.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

const DEADLINE_MS = 30_000;

async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface Instance {
  reg: TestRegistry;
  client: RegistryClient;
  /** getTaggedManifest calls that reached the store. */
  lookups: () => number;
  shared: () => number;
  /** Holds the answer of the next getTaggedManifest call (read already) until `release()`. */
  holdNext(): { release(): void; held: () => boolean };
}

describe('tag lookups: two instances on one Redis', () => {
  let redis: RedisServer;
  let scratch: ScratchDir;
  let a: Instance;
  let b: Instance;

  async function instance(prefix: string): Promise<Instance> {
    let lookups = 0;
    let shared = 0;
    let hold: { gate: Promise<void>; claimed: boolean; entered: boolean } | undefined;
    const reg = await startTestRegistry({
      driver: async () => new FilesystemDriver({ root: join(scratch.path, 'storage') }),
      metadata: async () => {
        const store = new RedisStore({ ...redisConfigSchema.parse({ url: redis.url, keyPrefix: prefix }) });
        await store.waitUntilReady(5000);
        const inner = store.getTaggedManifest.bind(store);
        store.getTaggedManifest = async (repo: string, tag: string): Promise<ManifestRecord | undefined> => {
          lookups++;
          const current = hold;
          if (!current || current.claimed) return inner(repo, tag);
          current.claimed = true;
          // Read first, then held: the answer is from before whatever happens while it is held.
          const record = await inner(repo, tag);
          current.entered = true;
          await current.gate;
          return record;
        };
        return store;
      },
      deps: { onTagLookup: (isShared) => void (isShared && shared++) },
    });
    return {
      reg,
      client: new RegistryClient(reg.url),
      lookups: () => lookups,
      shared: () => shared,
      holdNext() {
        let open!: () => void;
        const state = { gate: new Promise<void>((resolve) => (open = resolve)), claimed: false, entered: false };
        hold = state;
        return {
          release: () => {
            hold = undefined;
            open();
          },
          held: () => state.entered,
        };
      },
    };
  }

  before(async () => {
    redis = await startRedisServer();
    scratch = await makeScratchDir('tags');
    const prefix = `berth-${randomBytes(4).toString('hex')}:`;
    a = await instance(prefix);
    b = await instance(prefix);
  });
  after(async () => {
    await a?.reg.close();
    await b?.reg.close();
    await redis?.stop();
    await scratch?.remove();
  });

  async function pushTagged(repo: string, tag: string): Promise<Blob> {
    const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex') }));
    await a.client.pushBlob(repo, config);
    const manifest = imageManifest(config, []);
    await a.client.pushManifest(repo, tag, manifest);
    return manifest;
  }

  async function headDigest(client: RegistryClient, path: string): Promise<string | null> {
    const res = await client.fetch(path, { method: 'HEAD' });
    assert.equal(res.status, 200);
    return res.headers.get('docker-content-digest');
  }

  it('a push in one instance is what the next HEAD in the other answers, round after round', async () => {
    for (let round = 0; round < 30; round++) {
      const manifest = await pushTagged('app/web', 'latest');
      assert.equal(await headDigest(b.client, '/v2/app/web/manifests/latest'), manifest.digest, `round ${round}`);
    }
  });

  it('a HEAD that arrives after a push never shares a lookup that started before it', async () => {
    const before = await pushTagged('app/race', 'latest');
    const gate = b.holdNext();
    const early = headDigest(b.client, '/v2/app/race/manifests/latest');
    await until('the early lookup to have read the store', gate.held);
    const pushed = await pushTagged('app/race', 'latest');
    const sharedBefore = b.shared();
    const late = headDigest(b.client, '/v2/app/race/manifests/latest');
    await until('the late HEAD to wait for a lookup', () => b.shared() === sharedBefore + 1);
    gate.release();
    // The early one read the store before the push; the late one was asked after it was acknowledged.
    assert.equal(await early, before.digest);
    assert.equal(await late, pushed.digest);
  });

  it('a burst of 200 HEADs of one tag costs two metadata lookups, all answered with the tag', async () => {
    const manifest = await pushTagged('app/burst', 'latest');
    const gate = b.holdNext();
    const lookupsBefore = b.lookups();
    const sharedBefore = b.shared();
    const heads = Array.from({ length: 200 }, () => headDigest(b.client, '/v2/app/burst/manifests/latest'));
    await until('199 HEADs to share', () => b.shared() === sharedBefore + 199);
    gate.release();
    for (const digest of await Promise.all(heads)) assert.equal(digest, manifest.digest);
    // The one in flight when the burst came, and one for every request that came while it ran.
    assert.equal(b.lookups() - lookupsBefore, 2);
  });

  it('a deleted tag is gone for the next HEAD in the other instance', async () => {
    const manifest = await pushTagged('app/gone', 'old');
    assert.equal(await headDigest(b.client, '/v2/app/gone/manifests/old'), manifest.digest);
    const del = await a.client.fetch(`/v2/app/gone/manifests/${manifest.digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    assert.equal((await b.client.fetch('/v2/app/gone/manifests/old', { method: 'HEAD' })).status, 404);
  });
});
