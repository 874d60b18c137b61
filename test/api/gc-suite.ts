// Garbage collection through the HTTP API, on every storage × metadata pair: what goes, what stays,
// the quarantine, the deleting state, the refusal rule. Passes run on demand (app.gc.pass) with an
// injectable clock, so no test waits for time to pass.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GcRefusedError } from '../../server/registry/gc/collector.js';
import { blobKey } from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { BlobNotFoundError } from '../../storage-drivers/blob/types.js';
import { blob, imageManifest, OCI_INDEX, OCI_MANIFEST, randomBlob, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry, type TestRegistryOptions } from '../helpers/registry.js';

const HOUR = 3_600_000;

interface Clock {
  now: number;
}

async function stored(reg: TestRegistry, digest: string): Promise<boolean> {
  try {
    await reg.driver.stat(blobKey(parseDigest(digest)));
    return true;
  } catch (err) {
    if (err instanceof BlobNotFoundError) return false;
    throw err;
  }
}

async function startGcRegistry(options: TestRegistryOptions, clock: Clock, gc: Record<string, unknown>): Promise<TestRegistry> {
  return startTestRegistry({
    ...options,
    config: { ...options.config, gc: { enabled: false, delaySeconds: 0, quarantineSeconds: 0, ...gc } },
    deps: { ...options.deps, now: () => clock.now },
  });
}

export function runGcSuite(name: string, options: () => Promise<TestRegistryOptions>): void {
  describe(`garbage collection on ${name}`, () => {
    describe('without delay or quarantine', () => {
      const clock: Clock = { now: Date.now() };
      let reg: TestRegistry;
      let c: RegistryClient;
      before(async () => {
        reg = await startGcRegistry(await options(), clock, {});
        c = new RegistryClient(reg.url);
      });
      after(async () => reg?.close());
      const tick = () => (clock.now += 1000);

      it('deletes what only a deleted manifest referenced, keeps what another manifest shares', async () => {
        const shared = randomBlob(3000);
        const own = randomBlob(5000);
        const config = blob('{"gc":"config-a"}');
        const configB = blob('{"gc":"config-b"}');
        for (const b of [shared, own, config, configB]) await c.pushBlob('gc/a', b);
        const a = imageManifest(config, [shared, own]);
        const b = imageManifest(configB, [shared]);
        assert.equal((await c.pushManifest('gc/a', 'one', a)).status, 201);
        assert.equal((await c.pushManifest('gc/a', 'two', b)).status, 201);

        tick();
        const untouched = await reg.app.gc.pass();
        assert.equal(untouched.blobsDeleted, 0, 'everything is referenced');

        assert.equal((await c.fetch(`/v2/gc/a/manifests/${a.digest}`, { method: 'DELETE' })).status, 202);
        tick();
        const summary = await reg.app.gc.pass();
        assert.equal(summary.blobsDeleted, 3, 'the manifest, its config and its own layer');
        assert.equal(summary.bytesFreed, own.size + config.size + a.size);
        assert.equal(await stored(reg, own.digest), false);
        assert.equal(await stored(reg, a.digest), false);
        assert.equal(await stored(reg, shared.digest), true);
        assert.equal((await c.fetch(`/v2/gc/a/blobs/${own.digest}`, { method: 'HEAD' })).status, 404);
        assert.equal((await c.fetch(`/v2/gc/a/blobs/${shared.digest}`, { method: 'HEAD' })).status, 200);
        assert.equal((await c.fetch('/v2/gc/a/manifests/two')).status, 200);
      });

      it('collects an upload nothing references once the delay is over, and an abandoned upload', async () => {
        const orphan = randomBlob(2000);
        await c.pushBlob('gc/orphans', orphan);
        const started = await c.fetch('/v2/gc/orphans/blobs/uploads/', { method: 'POST' });
        assert.equal(started.status, 202);
        tick();
        clock.now += 2 * HOUR; // past the uploads' idle timeout (an hour)
        const summary = await reg.app.gc.pass();
        assert.equal(await stored(reg, orphan.digest), false);
        assert.ok(summary.blobsDeleted >= 1);
        assert.equal(summary.uploadsExpired, 1);
        assert.equal((await c.fetch(`/v2/gc/orphans/blobs/${orphan.digest}`, { method: 'HEAD' })).status, 404);
        // Pushed again, it is whole again.
        await c.pushBlob('gc/orphans', orphan);
        const back = await c.fetch(`/v2/gc/orphans/blobs/${orphan.digest}`);
        assert.deepEqual(Buffer.from(await back.arrayBuffer()), orphan.data);
      });

      it('removes a repository link its manifests no longer reference, while another repository keeps the bytes', async () => {
        const layer = randomBlob(1500);
        const config = blob('{"gc":"links"}');
        for (const repo of ['gc/keep', 'gc/drop']) for (const b of [layer, config]) await c.pushBlob(repo, b);
        const m = imageManifest(config, [layer]);
        await c.pushManifest('gc/keep', 'v1', m);
        await c.pushManifest('gc/drop', 'v1', m);
        await c.fetch(`/v2/gc/drop/manifests/${m.digest}`, { method: 'DELETE' });
        tick();
        const summary = await reg.app.gc.pass();
        assert.ok(summary.linksRemoved >= 2, `links removed: ${summary.linksRemoved}`);
        assert.equal((await c.fetch(`/v2/gc/drop/blobs/${layer.digest}`, { method: 'HEAD' })).status, 404);
        assert.equal((await c.fetch(`/v2/gc/keep/blobs/${layer.digest}`, { method: 'HEAD' })).status, 200);
        assert.equal(await stored(reg, layer.digest), true);
      });

      it('a dry run reports and changes nothing', async () => {
        const orphan = randomBlob(1200);
        await c.pushBlob('gc/dry', orphan);
        tick();
        const dry = await reg.app.gc.pass({ dryRun: true });
        assert.equal(dry.dryRun, true);
        // No quarantine here, so a real pass would delete it at once: the dry run says so, bytes included.
        assert.equal(dry.blobsQuarantined, 1);
        assert.equal(dry.blobsDeleted, 1);
        assert.equal(dry.bytesFreed, orphan.size);
        assert.equal(await stored(reg, orphan.digest), true);
        assert.equal((await c.fetch(`/v2/gc/dry/blobs/${orphan.digest}`, { method: 'HEAD' })).status, 200);
        tick();
        await reg.app.gc.pass();
        assert.equal(await stored(reg, orphan.digest), false);
      });
    });

    describe('the delay, the quarantine and the deleting state', () => {
      const clock: Clock = { now: Date.now() };
      let reg: TestRegistry;
      let c: RegistryClient;
      before(async () => {
        reg = await startGcRegistry(await options(), clock, { delaySeconds: 3600, quarantineSeconds: 86_400 });
        c = new RegistryClient(reg.url);
      });
      after(async () => reg?.close());

      async function orphanOf(repo: string, size: number): Promise<Blob> {
        const b = randomBlob(size);
        await c.pushBlob(repo, b);
        return b;
      }

      it('a HEAD within the delay keeps an old orphan that a push is about to reuse', async () => {
        const old = await orphanOf('gc/reuse', 1000);
        clock.now += 2 * HOUR;
        assert.equal((await c.fetch(`/v2/gc/reuse/blobs/${old.digest}`, { method: 'HEAD' })).status, 200);
        const summary = await reg.app.gc.pass();
        assert.equal(summary.blobsQuarantined, 0);
        assert.equal((await reg.metadata.gc.status(old.digest)).state, 'live');
      });

      it('quarantines an old orphan with its bytes kept; a push of it revives it without sending bytes', async () => {
        const layer = await orphanOf('gc/revive', 1000);
        const config = await orphanOf('gc/revive', 100);
        clock.now += 2 * HOUR;
        const first = await reg.app.gc.pass();
        assert.ok(first.blobsQuarantined >= 2);
        assert.equal((await reg.metadata.gc.status(layer.digest)).state, 'quarantined');
        assert.equal(await stored(reg, layer.digest), true);
        // The client's HEAD finds it (and revives it), so it pushes only the manifest.
        assert.equal((await c.fetch(`/v2/gc/revive/blobs/${layer.digest}`, { method: 'HEAD' })).status, 200);
        assert.equal((await c.pushManifest('gc/revive', 'v1', imageManifest(config, [layer]))).status, 201);
        clock.now += 2 * 86_400_000;
        await reg.app.gc.pass();
        assert.equal((await reg.metadata.gc.status(layer.digest)).state, 'live');
        assert.equal(await stored(reg, config.digest), true);
        assert.equal(await stored(reg, layer.digest), true);
      });

      it('deletes a quarantined orphan for good once the quarantine is over', async () => {
        const b = await orphanOf('gc/purge', 1000);
        clock.now += 2 * HOUR;
        await reg.app.gc.pass();
        assert.equal((await reg.metadata.gc.status(b.digest)).state, 'quarantined');
        clock.now += 86_400_000 + 1000;
        const summary = await reg.app.gc.pass();
        assert.ok(summary.blobsDeleted >= 1);
        assert.equal(await stored(reg, b.digest), false);
        assert.equal((await reg.metadata.gc.status(b.digest)).state, 'live', 'gone: no record left');
      });

      it('while a digest is being deleted, HEAD answers 404 and a manifest that references it MANIFEST_BLOB_UNKNOWN', async () => {
        const layer = await orphanOf('gc/deleting', 1000);
        const config = await orphanOf('gc/deleting', 100);
        clock.now += 2 * HOUR;
        await reg.app.gc.pass();
        clock.now += 86_400_000 + 1000;
        // Stop the deletion half-way, as a process killed after its first step would leave it.
        const holders = await reg.metadata.gc.beginPurge(layer.digest, 'test-token', clock.now + 60_000, clock.now - 86_400_000, clock.now);
        assert.deepEqual(holders, ['gc/deleting']);
        assert.equal((await c.fetch(`/v2/gc/deleting/blobs/${layer.digest}`, { method: 'HEAD' })).status, 404);
        const m = imageManifest(config, [layer]);
        const put = await c.fetch('/v2/gc/deleting/manifests/v1', { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: m.data });
        assert.equal(put.status, 400);
        const body = (await put.json()) as { errors: { code: string }[] };
        assert.equal(body.errors[0]?.code, 'MANIFEST_BLOB_UNKNOWN');
        // The lease runs out; the next pass takes the deletion over and finishes it.
        clock.now += 61_000;
        await reg.app.gc.pass();
        assert.equal(await stored(reg, layer.digest), false);
        // The client pushes the blob again: the bytes are there and the manifest goes in.
        await c.pushBlob('gc/deleting', layer);
        assert.equal((await c.pushManifest('gc/deleting', 'v1', imageManifest(config, [layer]))).status, 201);
        assert.equal(await stored(reg, layer.digest), true);
      });

      it('an upload of a digest being deleted waits for the deletion, then ends with its bytes stored', async () => {
        const b = await orphanOf('gc/reupload', 1500);
        clock.now += 2 * HOUR;
        await reg.app.gc.pass();
        clock.now += 86_400_000 + 1000;
        await reg.metadata.gc.beginPurge(b.digest, 'stalled', clock.now + 60_000, clock.now - 86_400_000, clock.now);
        clock.now += 61_000; // the stalled deletion's lease is over; the next pass takes it over
        const started = await c.fetch('/v2/gc/reupload/blobs/uploads/', { method: 'POST' });
        const location = started.headers.get('location') as string;
        const sep = location.includes('?') ? '&' : '?';
        const finishing = c.fetch(`${location}${sep}digest=${b.digest}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream' },
          body: b.data,
        });
        await reg.app.gc.pass();
        assert.equal((await finishing).status, 201);
        assert.equal(await stored(reg, b.digest), true);
        const back = await c.fetch(`/v2/gc/reupload/blobs/${b.digest}`);
        assert.deepEqual(Buffer.from(await back.arrayBuffer()), b.data);
      });
    });

    describe('untagged manifests, indexes and referrers', () => {
      const clock: Clock = { now: Date.now() };
      let reg: TestRegistry;
      let c: RegistryClient;
      before(async () => {
        reg = await startGcRegistry(await options(), clock, { deleteUntagged: true, untaggedAgeSeconds: 3600 });
        c = new RegistryClient(reg.url);
      });
      after(async () => reg?.close());

      async function image(repo: string, label: string, extra: Record<string, unknown> = {}): Promise<Blob> {
        const config = blob(`{"gc":"${label}"}`);
        const layer = randomBlob(800);
        await c.pushBlob(repo, config);
        await c.pushBlob(repo, layer);
        return imageManifest(config, [layer], extra);
      }

      it('collects a manifest untagged longer than the age, keeps an index child while the index lives', async () => {
        const old = await image('gc/untagged', 'old');
        await c.pushManifest('gc/untagged', 'latest', old);
        const child = await image('gc/untagged', 'child');
        await c.pushManifest('gc/untagged', child.digest, child);
        const index = blob(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_INDEX,
            manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: child.digest, size: child.size }],
          }),
        );
        await c.pushManifest('gc/untagged', 'multi', index, OCI_INDEX);
        const next = await image('gc/untagged', 'new');
        await c.pushManifest('gc/untagged', 'latest', next); // `latest` moves: `old` is untagged now
        clock.now += 2 * HOUR;
        const summary = await reg.app.gc.pass();
        assert.ok(summary.manifestsDeleted >= 1);
        assert.equal((await c.fetch(`/v2/gc/untagged/manifests/${old.digest}`)).status, 404);
        assert.equal((await c.fetch(`/v2/gc/untagged/manifests/${child.digest}`)).status, 200, 'the index keeps its child');
        // The index goes; its child is collected with it (untagged, unreferenced, old).
        await c.fetch(`/v2/gc/untagged/manifests/multi`, { method: 'DELETE' });
        await c.fetch(`/v2/gc/untagged/manifests/${index.digest}`, { method: 'DELETE' });
        clock.now += 1000;
        await reg.app.gc.pass();
        assert.equal((await c.fetch(`/v2/gc/untagged/manifests/${child.digest}`)).status, 404);
        assert.equal((await c.fetch(`/v2/gc/untagged/manifests/latest`)).status, 200);
      });

      it('deletes the referrers of a deleted subject, tagged or not', async () => {
        const subject = await image('gc/referrers', 'subject');
        await c.pushManifest('gc/referrers', 'app', subject);
        const signature = await image('gc/referrers', 'sig', {
          subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.size },
        });
        await c.pushManifest('gc/referrers', 'sig', signature);
        await c.fetch(`/v2/gc/referrers/manifests/${subject.digest}`, { method: 'DELETE' });
        clock.now += 1000;
        await reg.app.gc.pass();
        assert.equal((await c.fetch(`/v2/gc/referrers/manifests/${signature.digest}`)).status, 404);
        assert.equal((await c.fetch(`/v2/gc/referrers/manifests/sig`)).status, 404);
      });
    });

    describe('refusal when the metadata may be incomplete', () => {
      it('refuses on a metadata store that starts empty over storage holding blobs', async () => {
        const clock: Clock = { now: Date.now() };
        const base = await options();
        const first = await startGcRegistry(base, clock, {});
        const c = new RegistryClient(first.url);
        const kept = randomBlob(1000);
        await c.pushBlob('gc/blind', kept);
        const driver = first.driver;
        await first.app.close();
        // Same storage, a new empty metadata store: it must not judge anything.
        const fresh = await options();
        const second = await startTestRegistry({
          ...base,
          ...(fresh.metadata ? { metadata: fresh.metadata } : {}),
          driver: async () => driver,
          config: { ...base.config, gc: { enabled: false, delaySeconds: 0, quarantineSeconds: 0 } },
          deps: { now: () => clock.now },
        });
        try {
          await assert.rejects(() => second.app.gc.pass(), GcRefusedError);
          assert.equal(await stored(second, kept.digest), true);
        } finally {
          await second.close();
          await first.close();
        }
      });
    });
  });
}
