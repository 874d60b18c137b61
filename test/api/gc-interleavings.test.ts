// Interleavings of a GC pass and a push that the race harness (test/e2e/gc-race.test.ts) met by
// chance, replayed step by step: each side is held at a gate until the other has reached its step.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { blobKey } from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import { blob, imageManifest, OCI_MANIFEST, randomBlob, RegistryClient } from '../helpers/oci.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { startTestRegistry } from '../helpers/registry.js';

/** A point one side stops at until the test opens it; `reached` resolves when the side gets there. */
class Gate {
  readonly reached: Promise<void>;
  private arrive!: () => void;
  private open!: () => void;
  private readonly opened: Promise<void>;
  constructor() {
    this.reached = new Promise((resolve) => (this.arrive = resolve));
    this.opened = new Promise((resolve) => (this.open = resolve));
  }
  pass(): Promise<void> {
    this.arrive();
    return this.opened;
  }
  release(): void {
    this.open();
  }
}

/** A memory driver whose put of one key waits at a gate first. */
class GatedDriver extends MemoryDriver {
  gated: { key: string; gate: Gate } | undefined;
  override async put(key: string, data: Buffer): Promise<void> {
    const g = this.gated;
    if (g && g.key === key) {
      this.gated = undefined;
      await g.gate.pass();
    }
    return super.put(key, data);
  }
}

let redis: Promise<RedisServer> | undefined;
after(async () => (await redis)?.stop());

const STORES: Record<string, (dir: string) => Promise<MetadataStore>> = {
  embedded: async (dir) => new EmbeddedStore({ path: join(dir, 'metadata') }),
  redis: async () => {
    const { url } = await (redis ??= startRedisServer());
    const store = new RedisStore(redisConfigSchema.parse({ url, keyPrefix: 'interleavings:' }));
    if (!(await store.waitUntilReady(5000))) throw new Error(`redis at ${url} did not become ready`);
    return store;
  },
};

for (const [name, openStore] of Object.entries(STORES)) {
  describe(`GC against a push, step by step (${name} metadata)`, () => {
    it('a manifest PUT that checked its links keeps them while a pass unlinks orphan links of a blob another repository holds', async () => {
      const driver = new GatedDriver();
      let holdsGate: Gate | undefined;
      const reg = await startTestRegistry({
        config: { gc: { enabled: false, delaySeconds: 0, quarantineSeconds: 0 } },
        driver: async () => driver,
        metadata: async (dir) => {
          const store = await openStore(dir);
          const gc = store.gc;
          const holds = gc.repositoryHolds.bind(gc);
          gc.repositoryHolds = async (repo, digest) => {
            const g = holdsGate;
            holdsGate = undefined;
            if (g) await g.pass();
            return holds(repo, digest);
          };
          return store;
        },
      });
      try {
        const c = new RegistryClient(reg.url);
        // The layer is held in `keep` by a manifest, and only linked in `race` (an upload nobody references yet).
        const layer = randomBlob(1000);
        const keepConfig = blob('{"interleaving":"keep"}');
        const raceConfig = blob('{"interleaving":"race"}');
        for (const b of [layer, keepConfig]) await c.pushBlob('gc/keep', b);
        await c.pushManifest('gc/keep', 'v1', imageManifest(keepConfig, [layer]));
        while ((await reg.metadata.gc.queueSize(Date.now())).queued > 0) await reg.app.gc.pass();
        for (const b of [layer, raceConfig]) await c.pushBlob('gc/race', b);

        // 1. The pass claims the layer (nothing pins it yet) and stops before it looks at the holders.
        holdsGate = new Gate();
        const gcAtHolds = holdsGate;
        const pass = reg.app.gc.pass();
        await gcAtHolds.reached;
        // 2. The push pins the layer, finds it linked in `race`, and stops before the manifest is recorded.
        const manifest = imageManifest(raceConfig, [layer]);
        const putGate = new Gate();
        driver.gated = { key: blobKey(parseDigest(manifest.digest)), gate: putGate };
        const put = c.fetch('/v2/gc/race/manifests/v1', { method: 'PUT', body: manifest.data, headers: { 'content-type': OCI_MANIFEST } });
        await putGate.reached;
        // 3. The pass goes on: the layer is held (by `keep`), and `race` only links it.
        gcAtHolds.release();
        await pass;
        // 4. The push finishes.
        putGate.release();
        const res = await put;
        if (res.status === 201) {
          // Accepted: then the layer must be in `race`, or the manifest references nothing there.
          assert.equal(
            (await c.fetch(`/v2/gc/race/blobs/${layer.digest}`, { method: 'HEAD' })).status,
            200,
            'the accepted manifest references a blob its repository lost',
          );
        } else {
          const body = (await res.json()) as { errors: { code: string }[] };
          assert.equal(body.errors[0]?.code, 'MANIFEST_BLOB_UNKNOWN', 'refused the way a client pushes again after');
        }
      } finally {
        await reg.close();
      }
    });
  });
}
