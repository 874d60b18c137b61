// Immutable tags over HTTP, written once and run on each metadata store (embedded, Redis): overwrite,
// re-push, multi-tag pushes, deletes, racing pushes, a delete racing a push, the API, audit lines and
// metrics, and a metadata rebuild after refusals.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog, MemoryAuditSink } from '../../server/operations/audit.js';
import { registryEventRecorder } from '../../server/operations/event-recorders.js';
import { Metrics } from '../../server/operations/metrics.js';
import { rebuildMetadata } from '../../server/registry/rebuild.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import type { PairEnvironment } from '../helpers/matrix.js';
import { blob, imageManifest, OCI_MANIFEST, randomBlob, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const RULES = {
  rules: [
    { repositories: 'team/**', tags: ['v*'], description: 'releases' },
    { repositories: 'base/*', tags: ['stable-*', 'lts'] },
  ],
};

interface ErrorBody {
  errors: Array<{ code: string; message: string; detail?: { rule?: string; operation?: string } }>;
}

/** Lets a test run something between the delete's look at a manifest's tags and the delete itself. */
interface Interleaving {
  afterManifestTags?: (() => Promise<void>) | undefined;
}

function interleaved(store: MetadataStore, hooks: Interleaving): MetadataStore {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'manifestTags') {
        return async (repo: string, digest: string) => {
          const tags = await target.manifestTags(repo, digest);
          const hook = hooks.afterManifestTags;
          hooks.afterManifestTags = undefined;
          await hook?.();
          return tags;
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export function runImmutableSuite(env: PairEnvironment): void {
  describe(`immutable tags over HTTP (${env.pair.title})`, () => {
    let reg: TestRegistry;
    let c: RegistryClient;
    let sink: MemoryAuditSink;
    let metrics: Metrics;
    let newStore: (dir: string) => Promise<MetadataStore>;
    const hooks: Interleaving = {};

    before(async () => {
      sink = new MemoryAuditSink();
      metrics = new Metrics({ processMetrics: false });
      const options = await env.options();
      const makeStore = options.metadata ?? (async (dir: string) => new EmbeddedStore({ path: join(dir, 'metadata') }));
      // Another store of the same kind, empty, for the rebuild.
      newStore = async (dir) => ((await env.options()).metadata ?? (async (d: string) => new EmbeddedStore({ path: join(d, 'metadata-rebuilt') })))(dir);
      reg = await startTestRegistry({
        ...options,
        metadata: async (dir) => interleaved(await makeStore(dir), hooks),
        config: { immutableTags: RULES, gc: { enabled: false } },
        deps: { onEvent: registryEventRecorder({ audit: new AuditLog(sink), metrics }) },
      });
      c = new RegistryClient(reg.url);
    });
    after(async () => reg?.close());

    const put = (repo: string, reference: string, m: Blob, query = '') =>
      c.fetch(`/v2/${repo}/manifests/${reference}${query}`, { method: 'PUT', body: m.data, headers: { 'Content-Type': OCI_MANIFEST } });
    const resolve = async (repo: string, ref: string) => {
      const r = await c.fetch(`/v2/${repo}/manifests/${ref}`, { method: 'HEAD' });
      return r.status === 200 ? r.headers.get('docker-content-digest') : r.status;
    };
    /** Pushes an image's blobs and its manifest under a mutable scratch tag; returns the manifest. */
    let scratch = 0;
    const image = async (repo: string) => (await c.pushImage(repo, `scratch-${++scratch}`, [64])).manifest;
    /** An image whose blobs are pushed but whose manifest is not. */
    const unpushed = async (repo: string) => {
      const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: ++scratch }));
      const layer = randomBlob(64);
      for (const b of [config, layer]) await c.pushBlob(repo, b);
      return imageManifest(config, [layer]);
    };
    const refusals = async (operation: string) => {
      const text = await metrics.registry.getSingleMetricAsString('berth_immutable_tag_refusals_total');
      const line = text.split('\n').find((l) => l.startsWith(`berth_immutable_tag_refusals_total{operation="${operation}"}`));
      return Number(line?.split(' ')[1] ?? NaN);
    };

    it('a new immutable tag is created; a different digest is refused with 403 naming the rule; the same digest again is fine', async () => {
      const a = await image('team/app');
      const b = await image('team/app');
      assert.equal((await put('team/app', 'v1.2.0', a)).status, 201);
      const before = await refusals('overwrite');

      const refused = await put('team/app', 'v1.2.0', b);
      assert.equal(refused.status, 403);
      const body = (await refused.json()) as ErrorBody;
      assert.equal(body.errors[0]?.code, 'DENIED');
      assert.equal(
        body.errors[0]?.message,
        `tag v1.2.0 in team/app is immutable (rule immutableTags.rules[0] (team/** v*)): it points at ${a.digest}; push under a new tag`,
      );
      assert.equal(await resolve('team/app', 'v1.2.0'), a.digest);

      // A CI retry of the same push.
      const again = await put('team/app', 'v1.2.0', a);
      assert.equal(again.status, 201);
      assert.equal(again.headers.get('docker-content-digest'), a.digest);

      assert.equal(await refusals('overwrite'), before + 1);
      const line = sink.events.find((e) => e.action === 'immutable_refused' && e.tag === 'v1.2.0');
      assert.ok(line, 'an audit line for the refusal');
      assert.equal(line.reason, 'overwrite');
      assert.equal(line.rule, 'immutableTags.rules[0] (team/** v*)');
      assert.equal(line.digest, a.digest);
      assert.equal(line.repository, 'team/app');

      // Mutable tags in the same repository, and matching tags elsewhere, move as always.
      assert.equal((await put('team/app', 'latest', a)).status, 201);
      assert.equal((await put('team/app', 'latest', b)).status, 201);
      const other = await image('other/app');
      assert.equal((await put('other/app', 'v1.2.0', other)).status, 201);
      assert.equal((await put('other/app', 'v1.2.0', await image('other/app'))).status, 201);
    });

    it('a ?tag= push is all or nothing: one immutable tag in conflict and none of the tags moves', async () => {
      const a = await image('base/alpine');
      const b = await unpushed('base/alpine');
      assert.equal((await put('base/alpine', a.digest, a, '?tag=stable-1&tag=edge')).status, 201);
      const refused = await put('base/alpine', b.digest, b, '?tag=edge&tag=stable-1&tag=new-one');
      assert.equal(refused.status, 403);
      assert.match(
        ((await refused.json()) as ErrorBody).errors[0]?.message ?? '',
        /^tag stable-1 in base\/alpine is immutable \(rule immutableTags\.rules\[1\]/,
      );
      assert.equal(await resolve('base/alpine', 'edge'), a.digest, 'the mutable tag of the refused push did not move');
      assert.equal(await resolve('base/alpine', 'stable-1'), a.digest);
      assert.equal(await resolve('base/alpine', 'new-one'), 404);
      assert.equal(await resolve('base/alpine', b.digest), 404, 'the refused manifest is not linked');
      // The same push of the same digest, with a new immutable tag, goes through.
      const ok = await put('base/alpine', a.digest, a, '?tag=stable-1&tag=lts');
      assert.equal(ok.status, 201);
      assert.equal(await resolve('base/alpine', 'lts'), a.digest);
    });

    it('deleting an immutable tag, or the manifest it points at, is refused; other deletes work', async () => {
      const a = await image('team/del');
      assert.equal((await put('team/del', 'v1', a)).status, 201);
      const [tagBefore, manifestBefore] = [await refusals('delete_tag'), await refusals('delete_manifest')];

      const delTag = await c.fetch('/v2/team/del/manifests/v1', { method: 'DELETE' });
      assert.equal(delTag.status, 403);
      const tagBody = (await delTag.json()) as ErrorBody;
      assert.equal(tagBody.errors[0]?.code, 'DENIED');
      assert.match(
        tagBody.errors[0]?.message ?? '',
        /^tag v1 in team\/del is immutable \(rule immutableTags\.rules\[0\] \(team\/\*\* v\*\)\): it points at sha256:[0-9a-f]{64} and cannot be deleted$/,
      );

      const delManifest = await c.fetch(`/v2/team/del/manifests/${a.digest}`, { method: 'DELETE' });
      assert.equal(delManifest.status, 403);
      assert.equal(
        ((await delManifest.json()) as ErrorBody).errors[0]?.message,
        `manifest ${a.digest} in team/del cannot be deleted: tag v1 in team/del is immutable (rule immutableTags.rules[0] (team/** v*)) and points at it`,
      );
      assert.equal(await resolve('team/del', 'v1'), a.digest);
      assert.equal(await refusals('delete_tag'), tagBefore + 1);
      assert.equal(await refusals('delete_manifest'), manifestBefore + 1);
      assert.ok(sink.events.some((e) => e.action === 'immutable_refused' && e.reason === 'delete_manifest' && e.digest === a.digest));

      // A missing tag is still unknown, not refused; a mutable tag and an untouched manifest delete fine.
      assert.equal((await c.fetch('/v2/team/del/manifests/v404', { method: 'DELETE' })).status, 404);
      const b = await image('team/del');
      assert.equal((await put('team/del', 'dev', b)).status, 201);
      assert.equal((await c.fetch('/v2/team/del/manifests/dev', { method: 'DELETE' })).status, 202);
      assert.equal((await c.fetch(`/v2/team/del/manifests/${b.digest}`, { method: 'DELETE' })).status, 202);
      assert.equal(await resolve('team/del', b.digest), 404);
    });

    it('a manifest delete that races a push adding an immutable tag checks again and refuses', async () => {
      const a = await image('team/race-del');
      assert.equal((await put('team/race-del', 'dev', a)).status, 201);
      // Between the delete's look at the tags ([dev, scratch-…]) and its delete, a push tags it v9.
      hooks.afterManifestTags = async () => {
        assert.equal((await put('team/race-del', 'v9', a)).status, 201);
      };
      const del = await c.fetch(`/v2/team/race-del/manifests/${a.digest}`, { method: 'DELETE' });
      assert.equal(hooks.afterManifestTags, undefined, 'the interleaved push ran');
      assert.equal(del.status, 403);
      assert.match(((await del.json()) as ErrorBody).errors[0]?.message ?? '', /tag v9 in team\/race-del is immutable/);
      assert.equal(await resolve('team/race-del', 'v9'), a.digest);
      assert.equal(await resolve('team/race-del', 'dev'), a.digest);

      // The same race with a mutable tag: the retry deletes the manifest with both tags.
      const b = await image('team/race-del');
      hooks.afterManifestTags = async () => {
        assert.equal((await put('team/race-del', 'late', b)).status, 201);
      };
      assert.equal((await c.fetch(`/v2/team/race-del/manifests/${b.digest}`, { method: 'DELETE' })).status, 202);
      assert.equal(await resolve('team/race-del', 'late'), 404);
    });

    it('two pushes of different digests racing to a new immutable tag: exactly one wins, the other gets 403', async () => {
      for (let round = 0; round < 8; round++) {
        const [a, b] = [await image('team/race'), await image('team/race')];
        const tag = `v0.${round}`;
        const [ra, rb] = await Promise.all([put('team/race', tag, a), put('team/race', tag, b)]);
        const statuses = [ra.status, rb.status].sort();
        assert.deepEqual(statuses, [201, 403], `round ${round}`);
        const winner = ra.status === 201 ? a : b;
        assert.equal(await resolve('team/race', tag), winner.digest);
        const loser = ra.status === 201 ? rb : ra;
        assert.match(((await loser.json()) as ErrorBody).errors[0]?.message ?? '', new RegExp(`it points at ${winner.digest}`));
      }
    });

    it('the API answers which rules apply and whether a tag is immutable', async () => {
      const res = await c.fetch('/api/v1/immutable-tags?repository=team/app&tag=v1.2.0');
      assert.equal(res.status, 200);
      const body = (await res.json()) as { repository: string; rules: Array<Record<string, unknown>>; tag: Record<string, unknown> };
      assert.equal(body.repository, 'team/app');
      assert.deepEqual(body.rules, [
        { source: 'config', rule: 'immutableTags.rules[0] (team/** v*)', index: 0, repositories: ['team/**'], tags: ['v*'], description: 'releases' },
      ]);
      assert.equal(body.tag.immutable, true);
      assert.equal(body.tag.rule, 'immutableTags.rules[0] (team/** v*)');
      assert.match(String(body.tag.digest), /^sha256:/);
      const mutable = (await (await c.fetch('/api/v1/immutable-tags?repository=team/app&tag=latest')).json()) as { tag: { immutable: boolean } };
      assert.equal(mutable.tag.immutable, false);
      const none = (await (await c.fetch('/api/v1/immutable-tags?repository=elsewhere/app')).json()) as { rules: unknown[]; tag?: unknown };
      assert.deepEqual(none.rules, []);
      assert.equal(none.tag, undefined);
      assert.equal((await c.fetch('/api/v1/immutable-tags')).status, 400);
      assert.equal((await c.fetch('/api/v1/immutable-tags?repository=Bad')).status, 400);
      assert.equal((await c.fetch('/api/v1/immutable-tags?repository=team/app&tag=-x')).status, 400);
    });

    it('a metadata rebuild after refused pushes keeps every immutable tag where it was', async () => {
      const a = await image('team/rebuild');
      const b = await image('team/rebuild');
      assert.equal((await put('team/rebuild', 'v1', a)).status, 201);
      assert.equal((await put('team/rebuild', 'v1', b)).status, 403);
      assert.equal((await put('team/rebuild', b.digest, b, '?tag=v1&tag=moved')).status, 403);
      const fresh = await newStore(reg.dir);
      try {
        await rebuildMetadata(reg.driver, fresh);
        assert.equal(await fresh.resolveTag('team/rebuild', 'v1'), a.digest);
        assert.equal(await fresh.resolveTag('team/rebuild', 'moved'), undefined);
        assert.equal(await fresh.resolveTag('team/app', 'v1.2.0'), await resolve('team/app', 'v1.2.0'));
        assert.equal(await fresh.resolveTag('base/alpine', 'edge'), await resolve('base/alpine', 'edge'));
      } finally {
        await fresh.close();
      }
    });
  });
}
