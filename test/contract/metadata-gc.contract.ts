// What every MetadataStore's garbage-collection records (store.gc, gc-types.ts) must do; run by
// test/metadata/*.test.ts for each store. Times are explicit `now` values; where the store stamps
// the wall clock itself (a tag leaving a manifest), the test brackets the call with Date.now().
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BlobPin, GcMetadata } from '../../storage-drivers/metadata/gc-types.js';
import type { Digest, ManifestRecord, MetadataStore } from '../../storage-drivers/metadata/types.js';
import { digestOf, eachStore, type MetadataStoreFixture } from './metadata-store.contract.js';

const T = 1_800_000_000_000;
const INDEX = 'application/vnd.oci.image.index.v1+json';

function manifest(name: string, extra: Partial<ManifestRecord> = {}): ManifestRecord {
  return {
    digest: digestOf(name),
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 300,
    references: [digestOf(`${name}-config`), digestOf(`${name}-layer`)],
    createdAt: 1000,
    ...extra,
  };
}

function pin(id: string, until: number, now: number): BlobPin {
  return { id, until, now };
}

export function runMetadataGcContract(name: string, setup: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore gc contract: ${name}`, () => {
    let store: MetadataStore;
    let gc: GcMetadata;
    eachStore(setup, (s) => {
      store = s;
      gc = s.gc;
    });

    /** The current version and holders of a digest that nothing blocks (claimed at a far-away `now`). */
    async function claimed(digest: Digest, now = T): Promise<{ version: string; holders: string[] }> {
      const claim = await gc.claimBlob(digest, now, now);
      assert.ok(claim.ok, `claim of ${digest} refused: ${JSON.stringify(claim)}`);
      return { version: claim.version, holders: [...claim.holders].sort() };
    }

    /** Quarantines a live, unpinned digest at `now` (its current version), releasing `released`. */
    async function quarantine(digest: Digest, now: number, released: string[] = []): Promise<void> {
      const { version } = await claimed(digest, now);
      assert.equal(await gc.quarantineBlob(digest, version, released, now), true);
    }

    describe('reference counts', () => {
      it('counts each distinct reference once per manifest newly linked, and uncounts it on delete', async () => {
        const config = digestOf('config');
        const layer = digestOf('layer');
        const a = manifest('a', { references: [config, layer, layer] });
        const b = manifest('b', { references: [layer] });
        await store.putManifest('r', a, ['v1']);
        await store.putManifest('r', a, ['v1', 'v2']); // a re-put counts nothing again
        assert.deepEqual(await gc.repositoryHolds('r', config), { manifestRefs: 1, manifest: false, link: false });
        assert.deepEqual(await gc.repositoryHolds('r', layer), { manifestRefs: 1, manifest: false, link: false });
        await store.putManifest('r', b, []);
        assert.equal((await gc.repositoryHolds('r', layer)).manifestRefs, 2);
        await store.putManifest('other', a, []);
        assert.equal((await gc.repositoryHolds('r', layer)).manifestRefs, 2);
        assert.equal((await gc.repositoryHolds('other', layer)).manifestRefs, 1);
        assert.deepEqual(await gc.repositoryHolds('r', a.digest), { manifestRefs: 0, manifest: true, link: false });

        assert.deepEqual([...((await store.deleteManifest('r', a.digest)) ?? [])].sort(), ['v1', 'v2']);
        assert.deepEqual(await gc.repositoryHolds('r', config), { manifestRefs: 0, manifest: false, link: false });
        assert.equal((await gc.repositoryHolds('r', layer)).manifestRefs, 1);
        assert.equal((await gc.repositoryHolds('r', a.digest)).manifest, false);
        assert.equal(await store.deleteManifest('r', a.digest), undefined); // already gone: counts stay
        assert.equal((await gc.repositoryHolds('r', layer)).manifestRefs, 1);
        await store.deleteManifest('r', b.digest);
        assert.equal((await gc.repositoryHolds('r', layer)).manifestRefs, 0);
        assert.equal((await gc.repositoryHolds('other', layer)).manifestRefs, 1);

        await store.putManifest('r', a, []); // linked anew: counted anew
        assert.equal((await gc.repositoryHolds('r', layer)).manifestRefs, 1);
      });

      it('reports a blob link as a hold', async () => {
        const d = digestOf('linked');
        await store.linkBlob('r', { digest: d, size: 1 });
        assert.deepEqual(await gc.repositoryHolds('r', d), { manifestRefs: 0, manifest: false, link: true });
        assert.deepEqual(await gc.repositoryHolds('s', d), { manifestRefs: 0, manifest: false, link: false });
      });
    });

    describe('holders', () => {
      it('adds the repository for a manifest, its references and a blob link, and keeps it through unlinks', async () => {
        const m = manifest('m');
        const [config, layer] = m.references as [Digest, Digest];
        await store.putManifest('r', m, ['t']);
        await store.putManifest('s', m, []);
        for (const d of [m.digest, config, layer]) assert.deepEqual((await claimed(d)).holders, ['r', 's']);

        const blob = digestOf('plain-blob');
        await store.linkBlob('r', { digest: blob, size: 5 });
        assert.equal(await store.unlinkBlob('r', blob), true);
        assert.deepEqual((await claimed(blob)).holders, ['r']);
        assert.deepEqual(await store.blobRepositories(blob, 10), []); // verified against the link
        assert.deepEqual(await store.blobRepositories(layer, 10), []); // held by a manifest only: no link

        await store.deleteManifest('r', m.digest);
        assert.deepEqual((await claimed(layer)).holders, ['r', 's']);
      });

      it('drops only the released holders on quarantine, and all of them on finishPurge', async () => {
        const d = digestOf('shared');
        for (const repo of ['a', 'b', 'c']) await store.linkBlob(repo, { digest: d, size: 1 });
        await quarantine(d, T, ['a', 'c']);
        assert.deepEqual(await gc.beginPurge(d, 'tok', T + 100, T, T + 1), ['b']);
        assert.equal(await gc.finishPurge(d, 'tok'), true);
        assert.deepEqual((await claimed(d)).holders, []);
      });
    });

    describe('versions and touches', () => {
      it('gives a never-touched digest the version "" and each touch a new version and time', async () => {
        const d = digestOf('touched');
        assert.deepEqual(await gc.status(d), { state: 'live' });
        const first = await claimed(d);
        assert.equal(first.version, '');
        await gc.touchBlobs([d, d], T);
        assert.deepEqual(await gc.status(d), { state: 'live', lastTouch: T });
        const second = await claimed(d, T + 1);
        await gc.touchBlobs([d], T);
        const third = await claimed(d, T + 1);
        assert.notEqual(second.version, '');
        assert.notEqual(third.version, second.version); // same time, still a new version
      });

      it('refuses a claim touched at or after touchedBefore, with the first time it could pass', async () => {
        const d = digestOf('recent');
        await gc.touchBlobs([d], T + 5);
        assert.deepEqual(await gc.claimBlob(d, T + 5, T + 20), { ok: false, reason: 'touched', retryAt: T + 5 + 15 + 1 });
        assert.deepEqual(await gc.claimBlob(d, T + 4, T + 20), { ok: false, reason: 'touched', retryAt: T + 5 + 16 + 1 });
        assert.equal((await gc.claimBlob(d, T + 6, T + 20)).ok, true);
      });

      it('lets a touch between claim and quarantine win', async () => {
        const d = digestOf('raced');
        await store.linkBlob('r', { digest: d, size: 1 });
        const { version } = await claimed(d);
        await gc.touchBlobs([d], T - 1);
        assert.equal(await gc.quarantineBlob(d, version, ['r'], T), false);
        assert.deepEqual(await gc.status(d), { state: 'live', lastTouch: T - 1 });
        assert.deepEqual((await claimed(d)).holders, ['r']); // a lost CAS releases nobody
        const fresh = await claimed(d);
        assert.equal(await gc.quarantineBlob(d, fresh.version, [], T), true);
        assert.deepEqual(await gc.status(d), { state: 'quarantined', since: T, lastTouch: T - 1 });
        assert.equal(await gc.quarantineBlob(d, fresh.version, [], T), false); // only a live digest
      });
    });

    describe('pins', () => {
      it('blocks claims while a pin runs, reporting the latest pin end, and touches the digest', async () => {
        const d = digestOf('pinned');
        assert.deepEqual(await gc.pinBlobs([d], pin('p1', T + 100, T)), []);
        assert.deepEqual(await gc.pinBlobs([d], pin('p2', T + 300, T + 1)), []);
        assert.deepEqual(await gc.status(d), { state: 'live', lastTouch: T + 1 });
        assert.deepEqual(await gc.claimBlob(d, T + 2, T + 50), { ok: false, reason: 'pinned', retryAt: T + 300 });
        assert.deepEqual(await gc.claimBlob(d, T + 2, T + 200), { ok: false, reason: 'pinned', retryAt: T + 300 });
        // Expired pins no longer count.
        assert.equal((await gc.claimBlob(d, T + 2, T + 300)).ok, true);
      });

      it('lets a pin between claim and quarantine win', async () => {
        const d = digestOf('pin-raced');
        const { version } = await claimed(d);
        assert.deepEqual(await gc.pinBlobs([d], pin('p', T + 100, T)), []);
        assert.equal(await gc.quarantineBlob(d, version, [], T + 1), false);
        assert.deepEqual(await gc.unpinBlobs([d], 'p'), []);
        const after = await claimed(d, T + 1);
        assert.equal(await gc.quarantineBlob(d, after.version, [], T + 1), true);
      });

      it('unpins, naming the digests whose pin was not there', async () => {
        const [a, b] = [digestOf('a'), digestOf('b')];
        await gc.pinBlobs([a], pin('p', T + 100, T));
        assert.deepEqual(await gc.unpinBlobs([a, b], 'p'), [b]);
        assert.deepEqual(await gc.unpinBlobs([a], 'p'), [a]);
        assert.deepEqual(await gc.unpinBlobs([a], 'other'), [a]);
        assert.equal((await gc.claimBlob(a, T + 1, T + 1)).ok, true);
      });

      it('revives a quarantined digest', async () => {
        const d = digestOf('revived');
        await quarantine(d, T);
        assert.equal((await gc.status(d)).state, 'quarantined');
        assert.deepEqual(await gc.pinBlobs([d], pin('p', T + 100, T + 10)), []);
        assert.deepEqual(await gc.status(d), { state: 'live', lastTouch: T + 10 });
        assert.equal(await gc.beginPurge(d, 'tok', T + 1000, T + 500, T + 500), undefined);
      });

      it('refuses pins while the digest is being deleted, and pins the others', async () => {
        const [d, other] = [digestOf('doomed'), digestOf('fine')];
        await store.linkBlob('r', { digest: d, size: 7 });
        await quarantine(d, T);
        assert.deepEqual(await gc.beginPurge(d, 'tok', T + 1000, T, T + 1), ['r']);
        assert.deepEqual(await gc.pinBlobs([other, d], pin('p', T + 100, T + 2)), [d]);
        assert.deepEqual(await gc.claimBlob(other, T + 3, T + 3), { ok: false, reason: 'pinned', retryAt: T + 100 });
        assert.deepEqual(await gc.unpinBlobs([d], 'p'), [d]); // never pinned
        assert.deepEqual(await gc.status(d), { state: 'deleting', since: T });
        assert.deepEqual(await gc.claimBlob(d, T + 3, T + 3), { ok: false, reason: 'deleting', until: T + 1000 });
      });
    });

    describe('states', () => {
      it('reports a quarantined digest to claims', async () => {
        const d = digestOf('q');
        await quarantine(d, T + 7);
        assert.deepEqual(await gc.claimBlob(d, T + 8, T + 8), { ok: false, reason: 'quarantined', since: T + 7 });
      });

      it('tells HEAD a digest is being deleted through getCheckedBlobLink', async () => {
        const d = digestOf('head');
        await store.linkBlob('r', { digest: d, size: 3 });
        await quarantine(d, T);
        assert.deepEqual(await store.getCheckedBlobLink('r', d), { digest: d, size: 3, missing: false, deleting: false });
        assert.deepEqual(await gc.beginPurge(d, 'tok', T + 100, T, T), ['r']);
        assert.deepEqual(await store.getCheckedBlobLink('r', d), { digest: d, size: 3, missing: false, deleting: true });
        await gc.abortPurge(d, 'tok');
        assert.deepEqual(await store.getCheckedBlobLink('r', d), { digest: d, size: 3, missing: false, deleting: false });
      });

      it('starts a purge only once the quarantine is old enough, and never on a live digest', async () => {
        const d = digestOf('aging');
        assert.equal(await gc.beginPurge(d, 'tok', T + 100, T + 50, T + 50), undefined);
        assert.deepEqual(await gc.status(d), { state: 'live' });
        await quarantine(d, T);
        assert.equal(await gc.beginPurge(d, 'tok', T + 100, T - 1, T + 1), undefined);
        assert.deepEqual(await gc.status(d), { state: 'quarantined', since: T });
        assert.deepEqual(await gc.beginPurge(d, 'tok', T + 100, T, T + 1), []);
        assert.equal((await gc.status(d)).state, 'deleting');
      });

      it('revives a quarantined digest touched since, instead of purging it', async () => {
        const d = digestOf('used-again');
        await quarantine(d, T);
        await gc.touchBlobs([d], T + 5);
        assert.equal(await gc.beginPurge(d, 'tok', T + 1000, T + 500, T + 500), undefined);
        assert.deepEqual(await gc.status(d), { state: 'live', lastTouch: T + 5 });
        assert.equal((await gc.claimBlob(d, T + 500, T + 500)).ok, true);
      });

      it('takes over a deletion only once its lease ran out', async () => {
        const d = digestOf('lease');
        await store.linkBlob('r', { digest: d, size: 1 });
        await quarantine(d, T);
        assert.deepEqual(await gc.beginPurge(d, 't1', T + 100, T, T + 1), ['r']);
        assert.equal(await gc.beginPurge(d, 't2', T + 200, T, T + 50), undefined);
        assert.equal(await gc.beginPurge(d, 't2', T + 200, T, T + 100), undefined); // until is not yet past
        assert.deepEqual(await gc.beginPurge(d, 't2', T + 300, T, T + 101), ['r']);
        assert.deepEqual(await gc.claimBlob(d, T + 102, T + 102), { ok: false, reason: 'deleting', until: T + 300 });
        assert.equal(await gc.finishPurge(d, 't1'), false); // the first one lost its lease
        await gc.abortPurge(d, 't1');
        assert.equal((await gc.status(d)).state, 'deleting');
        assert.equal(await gc.finishPurge(d, 't2'), true);
        assert.equal(await gc.finishPurge(d, 't2'), false);
      });

      it('gives a deletion up under its own token only', async () => {
        const d = digestOf('abort');
        await quarantine(d, T);
        await gc.beginPurge(d, 'tok', T + 100, T, T);
        await gc.abortPurge(d, 'wrong');
        assert.equal((await gc.status(d)).state, 'deleting');
        await gc.abortPurge(d, 'tok');
        assert.deepEqual(await gc.status(d), { state: 'live' });
        assert.equal(await gc.finishPurge(d, 'tok'), false);
        assert.equal((await gc.claimBlob(d, T, T)).ok, true);
      });

      it('forgets pins, holders, touches and the missing mark of a purged digest', async () => {
        const d = digestOf('purged');
        await store.linkBlob('r', { digest: d, size: 9 });
        await gc.pinBlobs([d], pin('old', T, T - 10)); // expired by T
        await store.markBlobMissing(d);
        await quarantine(d, T);
        assert.deepEqual(await gc.beginPurge(d, 'tok', T + 100, T, T), ['r']);
        assert.equal(await gc.finishPurge(d, 'tok'), true);
        assert.deepEqual(await gc.status(d), { state: 'live' });
        assert.deepEqual(await gc.unpinBlobs([d], 'old'), [d]);
        assert.deepEqual(await claimed(d), { version: '', holders: [] });
        // The link itself is the caller's to drop (unlinkOrphan); the missing mark went with the digest.
        assert.deepEqual(await store.getCheckedBlobLink('r', d), { digest: d, size: 9, missing: false, deleting: false });
      });
    });

    describe('unlinkOrphan', () => {
      it('removes a link only when no manifest of that repository references the digest or is it', async () => {
        const m = manifest('m');
        const [config] = m.references as [Digest];
        const loose = digestOf('loose');
        await store.putManifest('r', m, []);
        for (const d of [config, m.digest, loose]) await store.linkBlob('r', { digest: d, size: 1 });
        await store.linkBlob('s', { digest: config, size: 1 });

        assert.equal(await gc.unlinkOrphan('r', config), false);
        assert.equal(await gc.unlinkOrphan('r', m.digest), false);
        assert.deepEqual(await store.getBlobLink('r', config), { digest: config, size: 1 });
        assert.equal(await gc.unlinkOrphan('r', loose), true);
        assert.equal(await store.getBlobLink('r', loose), undefined);
        assert.equal(await gc.unlinkOrphan('s', config), true); // counts are per repository
        assert.equal(await store.getBlobLink('s', config), undefined);

        await store.deleteManifest('r', m.digest);
        assert.equal(await gc.unlinkOrphan('r', config), true);
        assert.equal(await gc.unlinkOrphan('r', m.digest), true);
        assert.equal(await store.getBlobLink('r', config), undefined);
      });
    });

    describe('deleteManifestIfUnused', () => {
      const rule = (untaggedBefore: number) => ({ untaggedBefore, orphanReferrers: false });

      it('collects an untagged manifest pushed before untaggedBefore, like deleteManifest', async () => {
        const m = manifest('m', { createdAt: 1000, subject: digestOf('elsewhere') });
        await store.putManifest('r', m, []);
        assert.equal(await gc.deleteManifestIfUnused('r', m.digest, rule(1000)), undefined);
        assert.equal(await gc.deleteManifestIfUnused('r', m.digest, { orphanReferrers: false }), undefined);
        assert.deepEqual(await gc.deleteManifestIfUnused('r', m.digest, rule(1001)), m);
        assert.equal(await store.getManifest('r', m.digest), undefined);
        assert.deepEqual(await store.listReferrers('r', digestOf('elsewhere')), []);
        for (const d of m.references) assert.equal((await gc.repositoryHolds('r', d)).manifestRefs, 0);
        assert.equal(await gc.deleteManifestIfUnused('r', m.digest, rule(1001)), undefined);
        assert.equal(await gc.deleteManifestIfUnused('nowhere', m.digest, rule(1001)), undefined);
      });

      it('a dry run answers what it would delete and changes nothing', async () => {
        const m = manifest('dry', { createdAt: 1000 });
        await store.putManifest('r', m, []);
        assert.equal(await gc.deleteManifestIfUnused('r', m.digest, { ...rule(1000), dryRun: true }), undefined);
        assert.deepEqual(await gc.deleteManifestIfUnused('r', m.digest, { ...rule(1001), dryRun: true }), m);
        assert.deepEqual(await store.getManifest('r', m.digest), m);
        for (const d of m.references) assert.equal((await gc.repositoryHolds('r', d)).manifestRefs, 1);
      });

      it('keeps a tagged manifest, and counts from when its last tag moved away', async () => {
        const old = manifest('old', { createdAt: 1000 });
        await store.putManifest('r', old, ['latest']);
        assert.equal(await gc.deleteManifestIfUnused('r', old.digest, rule(T)), undefined);
        const before = Date.now();
        await store.putManifest('r', manifest('new'), ['latest']);
        const after = Date.now();
        assert.equal(await gc.deleteManifestIfUnused('r', old.digest, rule(before)), undefined);
        assert.deepEqual(await gc.deleteManifestIfUnused('r', old.digest, rule(after + 1)), old);
        assert.equal(await store.resolveTag('r', 'latest'), digestOf('new'));
      });

      it('counts from when a tag was deleted', async () => {
        const m = manifest('m', { createdAt: 1000 });
        await store.putManifest('r', m, ['t', 'u']);
        await store.deleteTag('r', 'u');
        assert.equal(await gc.deleteManifestIfUnused('r', m.digest, rule(T)), undefined); // 't' still points at it
        const before = Date.now();
        await store.deleteTag('r', 't');
        const after = Date.now();
        assert.equal(await gc.deleteManifestIfUnused('r', m.digest, rule(before)), undefined);
        assert.deepEqual(await gc.deleteManifestIfUnused('r', m.digest, rule(after + 1)), m);
      });

      it('forgets the untagged time with the manifest', async () => {
        const m = manifest('m', { createdAt: 1000 });
        await store.putManifest('r', m, ['t']);
        await store.deleteTag('r', 't');
        await store.deleteManifest('r', m.digest);
        await store.putManifest('r', m, []);
        assert.deepEqual(await gc.deleteManifestIfUnused('r', m.digest, rule(1001)), m);
      });

      it('keeps an index child while the index is there', async () => {
        const child = manifest('child', { createdAt: 1000 });
        const index = manifest('index', { mediaType: INDEX, references: [child.digest], createdAt: 1000 });
        await store.putManifest('r', child, []);
        await store.putManifest('r', index, []);
        assert.equal(await gc.deleteManifestIfUnused('r', child.digest, rule(T)), undefined);
        assert.deepEqual(await gc.deleteManifestIfUnused('r', index.digest, rule(T)), index);
        assert.deepEqual(await gc.deleteManifestIfUnused('r', child.digest, rule(T)), child);
      });

      it('collects a referrer whose subject is gone, tagged or not, unless referenced', async () => {
        const subject = manifest('subject');
        const sig = manifest('sig', { subject: subject.digest, createdAt: T });
        const sbom = manifest('sbom', { subject: subject.digest, createdAt: T });
        const holder = manifest('holder', { mediaType: INDEX, references: [sbom.digest], createdAt: T });
        const plain = manifest('plain', { createdAt: 1000 });
        await store.putManifest('r', subject, ['latest']);
        await store.putManifest('r', sig, ['sig']);
        await store.putManifest('r', sbom, []);
        await store.putManifest('r', holder, ['h']);
        await store.putManifest('r', plain, []);
        const orphans = { orphanReferrers: true };
        assert.equal(await gc.deleteManifestIfUnused('r', sig.digest, orphans), undefined);
        await store.deleteManifest('r', subject.digest);
        assert.equal(await gc.deleteManifestIfUnused('r', plain.digest, orphans), undefined); // no subject: not this rule
        assert.equal(await gc.deleteManifestIfUnused('r', sbom.digest, orphans), undefined);
        assert.equal(await gc.deleteManifestIfUnused('r', sig.digest, rule(T)), undefined); // tagged, pushed at T
        assert.deepEqual(await gc.deleteManifestIfUnused('r', sig.digest, orphans), sig);
        assert.deepEqual(await store.listTags('r', {}), ['h']);
        assert.deepEqual(await store.listReferrers('r', subject.digest), [sbom]);
        await store.deleteManifest('r', holder.digest);
        assert.deepEqual(await gc.deleteManifestIfUnused('r', sbom.digest, orphans), sbom);
        assert.deepEqual(await store.listReferrers('r', subject.digest), []);
      });
    });

    describe('queue', () => {
      it('hands out due work earliest first with tokens, and completes only unchanged items', async () => {
        const [d1, d2, d3] = [digestOf('q1'), digestOf('q2'), digestOf('q3')];
        assert.deepEqual(await gc.queueSize(T), { queued: 0, due: 0 });
        assert.deepEqual(await gc.takeDue(T, 10), []);
        await gc.enqueue([
          { kind: 'blob', digest: d1, due: 100 },
          { kind: 'manifest', repo: 'team/app', digest: d2, due: 50 },
          { kind: 'blob', digest: d3, due: 300 },
        ]);
        assert.deepEqual(await gc.queueSize(200), { queued: 3, due: 2 });
        const taken = await gc.takeDue(200, 10);
        assert.deepEqual(
          taken.map(({ token: _token, ...work }) => work),
          [
            { kind: 'manifest', repo: 'team/app', digest: d2, due: 50 },
            { kind: 'blob', digest: d1, due: 100 },
          ],
        );
        for (const work of taken) assert.ok(work.token.length > 0);
        assert.deepEqual(await gc.takeDue(200, 1), taken.slice(0, 1)); // taking leaves them queued
        assert.deepEqual(await gc.takeDue(200, 0), []);
        assert.deepEqual(await gc.takeDue(49, 10), []);

        await gc.enqueue([{ kind: 'blob', digest: d1, due: 150 }]); // re-queued: new due, new token
        await gc.complete(taken);
        const left = await gc.takeDue(200, 10);
        assert.equal(left.length, 1);
        assert.deepEqual({ ...left[0], token: '' }, { kind: 'blob', digest: d1, due: 150, token: '' });
        assert.notEqual(left[0]?.token, taken[1]?.token);
        assert.deepEqual(await gc.queueSize(200), { queued: 2, due: 1 });
        await gc.complete(left);
        await gc.complete(left); // again: nothing left to remove
        assert.deepEqual(await gc.queueSize(200), { queued: 1, due: 0 });
        assert.deepEqual(await gc.queueSize(300), { queued: 1, due: 1 });
        await gc.enqueue([]);
        await gc.complete([]);
      });

      it('keeps a blob item and a manifest item of the same digest apart', async () => {
        const d = digestOf('both');
        await gc.enqueue([
          { kind: 'blob', digest: d, due: 10 },
          { kind: 'manifest', repo: 'a', digest: d, due: 10 },
          { kind: 'manifest', repo: 'b', digest: d, due: 10 },
        ]);
        assert.deepEqual(await gc.queueSize(10), { queued: 3, due: 3 });
        const taken = await gc.takeDue(10, 10);
        assert.equal(taken.length, 3);
        await gc.complete(taken.filter((w) => w.kind === 'manifest' && w.repo === 'a'));
        const left = (await gc.takeDue(10, 10)).map((w) => (w.kind === 'blob' ? 'blob' : w.repo)).sort();
        assert.deepEqual(left, ['b', 'blob']);
      });
    });

    describe('store state', () => {
      it('keeps the completeness marker', async () => {
        assert.equal(await gc.completeness(), undefined);
        await gc.markComplete('fresh store');
        assert.equal(await gc.completeness(), 'fresh store');
        await gc.markComplete('rebuilt from the journal');
        assert.equal(await gc.completeness(), 'rebuilt from the journal');
      });

      it('is empty until a repository or an upload exists', async () => {
        assert.equal(await gc.isEmpty(), true);
        await store.createUpload({ id: 'u', repo: 'r', offset: 0, revision: 0, createdAt: 1, updatedAt: 1 });
        assert.equal(await gc.isEmpty(), false);
        await store.deleteUpload('u');
        assert.equal(await gc.isEmpty(), true);
        await gc.touchBlobs([digestOf('x')], T); // GC records alone are not content
        await gc.markComplete('x');
        assert.equal(await gc.isEmpty(), true);
        await store.linkBlob('r', { digest: digestOf('x'), size: 1 });
        assert.equal(await gc.isEmpty(), false);
      });
    });
  });
}
