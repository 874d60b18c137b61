// The one behaviour every MetadataStore must show; run by test/metadata/*.test.ts for each store.
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  ImmutableTagError,
  MissingReferencesError,
  TagsChangedError,
  type ManifestRecord,
  type MetadataStore,
  type UploadSession,
} from '../../storage-drivers/metadata/types.js';

export interface MetadataStoreFixture {
  store: MetadataStore;
  cleanup(): Promise<void>;
}

/** A fresh store from `setup` for each test of the enclosing describe, handed to `use`, cleaned up after. */
export function eachStore(setup: () => Promise<MetadataStoreFixture>, use: (store: MetadataStore) => void): void {
  let fixture: MetadataStoreFixture | undefined;
  beforeEach(async () => {
    fixture = await setup();
    use(fixture.store);
  });
  afterEach(async () => {
    await fixture?.cleanup();
    fixture = undefined;
  });
}

export function digestOf(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

function manifest(name: string, extra: Partial<ManifestRecord> = {}): ManifestRecord {
  return {
    digest: digestOf(name),
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 500 + name.length,
    references: [digestOf(`${name}-config`), digestOf(`${name}-layer`)],
    createdAt: 1_700_000_000_000,
    ...extra,
  };
}

function session(id: string, extra: Partial<UploadSession> = {}): UploadSession {
  return { id, repo: 'library/app', offset: 0, revision: 0, createdAt: 1000, updatedAt: 1000, ...extra };
}

/** Bytewise comparison, the order the stores promise (not localeCompare). */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function runMetadataStoreContract(name: string, setup: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let store: MetadataStore;
    eachStore(setup, (s) => {
      store = s;
    });

    describe('required references', () => {
      it('refuses, changing nothing, a manifest whose required blobs or manifests are not in the repository', async () => {
        const m = manifest('needs');
        const [config, layer] = m.references as [string, string];
        const child = digestOf('child-manifest');
        await store.linkBlob('r', { digest: config, size: 1 });
        await assert.rejects(
          () => store.putManifest('r', m, ['v1'], { required: { blobs: [config, layer], manifests: [child] } }),
          (err: unknown) => err instanceof MissingReferencesError && err.digests.join(',') === [layer, child].join(','),
        );
        assert.equal(await store.getManifest('r', m.digest), undefined);
        assert.equal(await store.resolveTag('r', 'v1'), undefined);
        assert.equal((await store.gc.repositoryHolds('r', config)).manifestRefs, 0);
        await store.linkBlob('r', { digest: layer, size: 1 });
        await store.putManifest('r', manifest('child-manifest-record', { digest: child }), []);
        await store.putManifest('r', m, ['v1'], { required: { blobs: [config, layer], manifests: [child] } });
        assert.equal(await store.resolveTag('r', 'v1'), m.digest);
      });
    });

    describe('tag details and guarded changes', () => {
      it("records each tag's push time from the put, moves it with the tag, and lists details in byte order with paging", async () => {
        const a = manifest('a', { createdAt: 1000 });
        const b = manifest('b', { createdAt: 2000 });
        await store.putManifest('r', a, ['v1', 'latest', 'v2']);
        await store.putManifest('r', b, ['latest']);
        assert.deepEqual(await store.listTagDetails('r', {}), [
          { tag: 'latest', digest: b.digest, pushedAt: 2000 },
          { tag: 'v1', digest: a.digest, pushedAt: 1000 },
          { tag: 'v2', digest: a.digest, pushedAt: 1000 },
        ]);
        assert.deepEqual(await store.listTagDetails('r', { n: 1, last: 'latest' }), [{ tag: 'v1', digest: a.digest, pushedAt: 1000 }]);
        assert.deepEqual(await store.listTagDetails('r', { n: 0 }), []);
        assert.deepEqual(await store.listTagDetails('other', {}), []);
        // A re-push of the same manifest is a push: the time moves.
        await store.putManifest('r', { ...a, createdAt: 3000 }, ['v1']);
        assert.equal((await store.listTagDetails('r', { last: 'latest', n: 1 }))[0]?.pushedAt, 3000);
        await store.deleteTag('r', 'v2');
        await store.putManifest('r', { ...a, createdAt: 4000 }, ['v2']);
        assert.equal((await store.listTagDetails('r', { last: 'v1' }))[0]?.pushedAt, 4000);
      });

      it('pages tag details across many tags without gaps or repeats', async () => {
        const a = manifest('a');
        const tags = Array.from({ length: 1250 }, (_, i) => `t${String(i).padStart(4, '0')}`);
        await store.putManifest('r', a, tags);
        const seen: string[] = [];
        let last: string | undefined;
        for (;;) {
          const page = await store.listTagDetails('r', { n: 400, last });
          if (page.length === 0) break;
          seen.push(...page.map((d) => d.tag));
          last = page[page.length - 1]?.tag;
        }
        assert.deepEqual(seen, tags);
        assert.equal((await store.listTagDetails('r', {})).length, 1250);
      });

      it('lists the tags of a manifest', async () => {
        const a = manifest('a');
        await store.putManifest('r', a, ['x', 'b', 'c']);
        assert.deepEqual(await store.manifestTags('r', a.digest), ['b', 'c', 'x']);
        assert.deepEqual(await store.manifestTags('r', manifest('none').digest), []);
        assert.deepEqual(await store.manifestTags('elsewhere', a.digest), []);
      });

      it('refuses, changing nothing, to move an immutable tag; sets a new one and allows the same digest again', async () => {
        const a = manifest('a', { createdAt: 1000 });
        const b = manifest('b', { createdAt: 2000 });
        await store.putManifest('r', a, ['v1'], { immutable: ['v1'] });
        await store.putManifest('r', { ...a, createdAt: 1500 }, ['v1', 'latest'], { immutable: ['v1'] });
        await assert.rejects(
          () => store.putManifest('r', b, ['latest', 'v1'], { immutable: ['v1'] }),
          (err: unknown) => err instanceof ImmutableTagError && err.tag === 'v1' && err.current === a.digest,
        );
        // All or nothing: latest did not move either, and b was not linked.
        assert.equal(await store.resolveTag('r', 'latest'), a.digest);
        assert.equal(await store.resolveTag('r', 'v1'), a.digest);
        assert.equal(await store.getManifest('r', b.digest), undefined);
        assert.deepEqual(
          (await store.listTagDetails('r', {})).map((d) => d.pushedAt),
          [1500, 1500],
        );
        // Without the guard the tag moves as before.
        await store.putManifest('r', b, ['v1']);
        assert.equal(await store.resolveTag('r', 'v1'), b.digest);
      });

      it('deletes a tag only while it points at the expected digest', async () => {
        const a = manifest('a');
        const b = manifest('b');
        await store.putManifest('r', a, ['t']);
        await store.putManifest('r', b, ['t']);
        assert.equal(await store.deleteTag('r', 't', { expected: a.digest }), false);
        assert.equal(await store.resolveTag('r', 't'), b.digest);
        assert.equal(await store.deleteTag('r', 't', { expected: b.digest }), true);
        assert.equal(await store.resolveTag('r', 't'), undefined);
        assert.equal(await store.deleteTag('r', 't', { expected: b.digest }), false);
      });

      it('deletes a manifest only with exactly the expected tags, else says which it has now', async () => {
        const a = manifest('a');
        await store.putManifest('r', a, ['one', 'two']);
        await assert.rejects(
          () => store.deleteManifest('r', a.digest, { expectedTags: ['one'] }),
          (err: unknown) => err instanceof TagsChangedError && err.current.join(',') === 'one,two',
        );
        await assert.rejects(() => store.deleteManifest('r', a.digest, { expectedTags: ['one', 'two', 'three'] }), TagsChangedError);
        assert.deepEqual(await store.getManifest('r', a.digest), a);
        assert.deepEqual((await store.deleteManifest('r', a.digest, { expectedTags: ['two', 'one'] }))?.sort(), ['one', 'two']);
        assert.equal(await store.deleteManifest('r', a.digest, { expectedTags: [] }), undefined);
        const b = manifest('b');
        await store.putManifest('r', b, []);
        assert.deepEqual(await store.deleteManifest('r', b.digest, { expectedTags: [] }), []);
        assert.deepEqual(await store.listTagDetails('r', {}), []);
      });
    });

    describe('tags', () => {
      it('sets, resolves, moves and deletes a tag', async () => {
        const a = manifest('a');
        const b = manifest('b');
        assert.equal(await store.resolveTag('r', 'latest'), undefined);
        const first = await store.putManifest('r', a, ['latest']);
        assert.deepEqual(first.previousTags, { latest: undefined });
        assert.equal(await store.resolveTag('r', 'latest'), a.digest);

        const moved = await store.putManifest('r', b, ['latest', 'v2']);
        assert.deepEqual(moved.previousTags, { latest: a.digest, v2: undefined });
        assert.equal(await store.resolveTag('r', 'latest'), b.digest);
        assert.equal(await store.resolveTag('r', 'v2'), b.digest);

        assert.equal(await store.deleteTag('r', 'latest'), true);
        assert.equal(await store.deleteTag('r', 'latest'), false);
        assert.equal(await store.resolveTag('r', 'latest'), undefined);
        assert.deepEqual(await store.listTags('r', {}), ['v2']);
      });

      it('re-putting a tag onto the same manifest reports it as its own previous digest', async () => {
        const a = manifest('a');
        await store.putManifest('r', a, ['t']);
        const again = await store.putManifest('r', a, ['t']);
        assert.deepEqual(again.previousTags, { t: a.digest });
        assert.deepEqual(await store.listTags('r', {}), ['t']);
      });

      it('keeps one answer per tag when many puts move it at once', async () => {
        const manifests = Array.from({ length: 20 }, (_, i) => manifest(`concurrent-${i}`));
        const results = await Promise.all(manifests.map((m) => store.putManifest('r', m, ['latest', 'stable'])));
        const winner = await store.resolveTag('r', 'latest');
        assert.equal(await store.resolveTag('r', 'stable'), winner);
        // Each put saw the one before it: exactly one saw nothing, the others a distinct earlier digest.
        const seen = results.map((r) => r.previousTags.latest);
        assert.equal(seen.filter((d) => d === undefined).length, 1);
        assert.equal(new Set(seen).size, 20);
        assert.ok(!seen.includes(winner));
        for (const m of manifests) {
          if (m.digest !== winner) assert.deepEqual(await store.deleteManifest('r', m.digest), []);
        }
        assert.deepEqual(await store.listTags('r', {}), ['latest', 'stable']);
        assert.deepEqual([...((await store.deleteManifest('r', winner ?? '')) ?? [])].sort(), ['latest', 'stable']);
        assert.deepEqual(await store.listTags('r', {}), []);
      });

      it('handles tag names that are special words in JavaScript or Lua', async () => {
        const tags = ['__proto__', 'constructor', 'toString', 'nil', 'false', 'end'];
        const a = manifest('a');
        const result = await store.putManifest('r', a, tags);
        assert.deepEqual(Object.keys(result.previousTags).sort(), [...tags].sort());
        assert.equal(Object.getPrototypeOf(result.previousTags), Object.prototype);
        for (const tag of tags) assert.equal(await store.resolveTag('r', tag), a.digest);
        const again = await store.putManifest('r', manifest('b'), ['__proto__']);
        assert.equal(Object.getOwnPropertyDescriptor(again.previousTags, '__proto__')?.value, a.digest);
      });

      it('lists tags in byte order, not locale or numeric order', async () => {
        const tags = ['b', 'a', 'A', '1.9', '1.10', 'Z', '_x', 'a-b', 'a.b', 'a_b', '10'];
        await store.putManifest('r', manifest('m'), tags);
        assert.deepEqual(await store.listTags('r', {}), [...tags].sort(byteOrder));
        assert.deepEqual((await store.listTags('r', {})).slice(0, 5), ['1.10', '1.9', '10', 'A', 'Z']);
      });

      it('pages tags with n and an exclusive last across many tags', async () => {
        const tags = Array.from({ length: 1000 }, (_, i) => `v${i}`);
        for (let i = 0; i < tags.length; i += 100) {
          await store.putManifest('r', manifest(`m${i}`), tags.slice(i, i + 100));
        }
        const sorted = [...tags].sort(byteOrder);
        assert.deepEqual(await store.listTags('r', {}), sorted);

        const seen: string[] = [];
        let last: string | undefined;
        for (;;) {
          const page = await store.listTags('r', { n: 77, last });
          assert.ok(page.length <= 77);
          if (page.length === 0) break;
          seen.push(...page);
          last = page[page.length - 1];
        }
        assert.deepEqual(seen, sorted);

        assert.deepEqual(await store.listTags('r', { n: 3, last: 'v5' }), ['v50', 'v500', 'v501']);
        // `last` need not be an existing tag.
        assert.deepEqual(await store.listTags('r', { n: 2, last: 'v98z' }), ['v99', 'v990']);
        assert.deepEqual(await store.listTags('r', { n: 2, last: 'v999' }), []);
        assert.deepEqual(await store.listTags('r', { last: 'v997' }), ['v998', 'v999']);
        assert.deepEqual(await store.listTags('r', { n: 0 }), []);
      });

      it('pages tags in byte order from a last that prefixes other tags', async () => {
        const tags = ['a', 'a-b', 'a.b', 'a_b', 'ab', 'A', 'B', '1.10', '1.9'];
        await store.putManifest('r', manifest('m'), tags);
        await store.putManifest('r-other', manifest('o'), ['a0']);
        const sorted = [...tags].sort(byteOrder);
        for (const [i, last] of sorted.entries()) {
          assert.deepEqual(await store.listTags('r', { n: 3, last }), sorted.slice(i + 1, i + 4), `after ${last}`);
        }
        assert.deepEqual(await store.listTags('r', { n: 100 }), sorted);
        assert.deepEqual(await store.listTags('r', { n: 2, last: 'a-' }), ['a-b', 'a.b']);
      });

      it('keeps tags of different repositories apart', async () => {
        await store.putManifest('r1', manifest('a'), ['t1']);
        await store.putManifest('r2', manifest('b'), ['t2']);
        assert.deepEqual(await store.listTags('r1', {}), ['t1']);
        assert.deepEqual(await store.listTags('r2', {}), ['t2']);
        assert.equal(await store.resolveTag('r1', 't2'), undefined);
        assert.deepEqual(await store.listTags('nothing', {}), []);
        // A repository whose name prefixes another's must not see its tags.
        await store.putManifest('r1/sub', manifest('c'), ['t3']);
        assert.deepEqual(await store.listTags('r1', {}), ['t1']);
      });
    });

    describe('manifests', () => {
      it('round-trips every record field', async () => {
        const subject = digestOf('subject');
        const full = manifest('full', {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          artifactType: 'application/vnd.example.sbom',
          annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z', 'x/y': 'ü €' },
          subject,
          references: [digestOf('c1'), digestOf('c2'), digestOf('c3')],
          createdAt: 1_712_345_678_901,
          inline: Buffer.from('{"schemaVersion":2}').toString('base64'),
          size: 12345,
        });
        await store.putManifest('r', full, []);
        assert.deepEqual(await store.getManifest('r', full.digest), full);

        const plain = manifest('plain');
        await store.putManifest('r', plain, []);
        const got = await store.getManifest('r', plain.digest);
        assert.deepEqual(got, plain);
        assert.equal(got !== undefined && 'subject' in got, false);
      });

      it('a manifest linked in one repository is invisible in another', async () => {
        const a = manifest('a');
        await store.putManifest('ra', a, ['t']);
        assert.equal(await store.getManifest('rb', a.digest), undefined);
        assert.equal(await store.deleteManifest('rb', a.digest), undefined);
        assert.deepEqual(await store.getManifest('ra', a.digest), a);
      });

      it('deleting a manifest drops exactly the tags pointing at it', async () => {
        const a = manifest('a');
        const b = manifest('b');
        await store.putManifest('r', a, ['one', 'two', 'three']);
        await store.putManifest('r', b, ['other']);
        await store.putManifest('r', b, ['three']);
        const dropped = await store.deleteManifest('r', a.digest);
        assert.deepEqual([...(dropped ?? [])].sort(byteOrder), ['one', 'two']);
        assert.equal(await store.getManifest('r', a.digest), undefined);
        assert.deepEqual(await store.listTags('r', {}), ['other', 'three']);
        assert.equal(await store.resolveTag('r', 'three'), b.digest);
        assert.equal(await store.deleteManifest('r', a.digest), undefined);
        assert.deepEqual(await store.deleteManifest('r', b.digest), ['other', 'three']);
        assert.deepEqual(await store.listTags('r', {}), []);
      });

      it('deleting a tag keeps its manifest', async () => {
        const a = manifest('a');
        await store.putManifest('r', a, ['t']);
        assert.equal(await store.deleteTag('r', 't'), true);
        assert.deepEqual(await store.getManifest('r', a.digest), a);
        assert.deepEqual(await store.deleteManifest('r', a.digest), []);
      });

      it('deleting a manifest in one repository leaves the same digest in another', async () => {
        const a = manifest('a');
        await store.putManifest('r1', a, ['t']);
        await store.putManifest('r2', a, ['t']);
        assert.deepEqual(await store.deleteManifest('r1', a.digest), ['t']);
        assert.deepEqual(await store.getManifest('r2', a.digest), a);
        assert.equal(await store.resolveTag('r2', 't'), a.digest);
      });
    });

    describe('referrers', () => {
      it('records referrers per subject on put and forgets them on delete', async () => {
        const subject = manifest('image');
        const sbom = manifest('sbom', { subject: subject.digest, artifactType: 'application/spdx+json' });
        const sig = manifest('sig', { subject: subject.digest, annotations: { k: 'v' } });
        const unrelated = manifest('unrelated', { subject: digestOf('elsewhere') });
        await store.putManifest('r', subject, ['latest']);
        await store.putManifest('r', sbom, []);
        await store.putManifest('r', sig, []);
        await store.putManifest('r', unrelated, []);

        const listed = await store.listReferrers('r', subject.digest);
        const byDigest = (x: ManifestRecord, y: ManifestRecord) => byteOrder(x.digest, y.digest);
        assert.deepEqual([...listed].sort(byDigest), [sbom, sig].sort(byDigest));

        await store.deleteManifest('r', sbom.digest);
        assert.deepEqual(await store.listReferrers('r', subject.digest), [sig]);
        assert.deepEqual(await store.listReferrers('r', digestOf('nothing')), []);
      });

      it('keeps referrers of different repositories apart', async () => {
        const subject = digestOf('shared-subject');
        const inA = manifest('sig-a', { subject });
        const inB = manifest('sig-b', { subject });
        await store.putManifest('ra', inA, []);
        await store.putManifest('rb', inB, []);
        assert.deepEqual(await store.listReferrers('ra', subject), [inA]);
        assert.deepEqual(await store.listReferrers('rb', subject), [inB]);
        await store.deleteManifest('ra', inA.digest);
        assert.deepEqual(await store.listReferrers('ra', subject), []);
        assert.deepEqual(await store.listReferrers('rb', subject), [inB]);
      });
    });

    describe('blob links', () => {
      it('links, reads and unlinks blobs per repository', async () => {
        const d = digestOf('layer');
        assert.equal(await store.getBlobLink('r', d), undefined);
        await store.linkBlob('r', { digest: d, size: 42 });
        await store.linkBlob('r', { digest: d, size: 42 }); // idempotent
        assert.deepEqual(await store.getBlobLink('r', d), { digest: d, size: 42 });
        assert.equal(await store.getBlobLink('other', d), undefined);
        assert.equal(await store.unlinkBlob('r', d), true);
        assert.equal(await store.unlinkBlob('r', d), false);
        assert.equal(await store.getBlobLink('r', d), undefined);
      });

      it('reads many manifests and blob links at once, in the order asked, past one batch', async () => {
        const a = manifest('batch-a');
        const b = manifest('batch-b');
        await store.putManifest('r', a, []);
        await store.putManifest('r', b, []);
        await store.putManifest('other', manifest('batch-c'), []);
        // More digests than one Redis HMGET carries (1000), the linked ones at both ends.
        const unknown = Array.from({ length: 1500 }, (_, i) => digestOf(`unknown ${i}`));
        const got = await store.getManifests('r', [b.digest, ...unknown, digestOf('batch-c'), a.digest]);
        assert.equal(got.length, 1503);
        assert.deepEqual(got[0], b);
        assert.deepEqual(got[1502], a);
        assert.ok(got.slice(1, 1502).every((m) => m === undefined));
        assert.deepEqual(await store.getManifests('r', []), []);

        const d = digestOf('batch-layer');
        await store.linkBlob('r', { digest: d, size: 42 });
        await store.linkBlob('other', { digest: digestOf('batch-other'), size: 7 });
        const links = await store.getBlobLinks('r', [...unknown, digestOf('batch-other'), d]);
        assert.equal(links.length, 1502);
        assert.deepEqual(links[1501], { digest: d, size: 42 });
        assert.ok(links.slice(0, 1501).every((l) => l === undefined));
        assert.deepEqual(await store.getBlobLinks('r', []), []);
      });

      it('knows the repositories a blob is linked in, bounded by limit', async () => {
        const d = digestOf('shared-layer');
        assert.deepEqual(await store.blobRepositories(d, 10), []);
        for (const repo of ['c', 'a', 'b']) await store.linkBlob(repo, { digest: d, size: 7 });
        await store.linkBlob('a', { digest: digestOf('another'), size: 1 });
        assert.deepEqual([...(await store.blobRepositories(d, 10))].sort(byteOrder), ['a', 'b', 'c']);
        const two = await store.blobRepositories(d, 2);
        assert.equal(two.length, 2);
        for (const repo of two) assert.ok(['a', 'b', 'c'].includes(repo));
        await store.unlinkBlob('b', d);
        assert.deepEqual([...(await store.blobRepositories(d, 10))].sort(byteOrder), ['a', 'c']);
      });
    });

    describe('missing marks', () => {
      it('marks a digest missing for every repository, reads the mark with the link, and clears it', async () => {
        const d = digestOf('lost-layer');
        assert.equal(await store.getCheckedBlobLink('r', d), undefined);
        await store.linkBlob('r', { digest: d, size: 42 });
        await store.linkBlob('s', { digest: d, size: 42 });
        assert.deepEqual(await store.getCheckedBlobLink('r', d), { digest: d, size: 42, missing: false, deleting: false });
        await store.markBlobMissing(d);
        await store.markBlobMissing(d); // idempotent
        assert.deepEqual(await store.getCheckedBlobLink('r', d), { digest: d, size: 42, missing: true, deleting: false });
        assert.deepEqual(await store.getCheckedBlobLink('s', d), { digest: d, size: 42, missing: true, deleting: false });
        // The plain link lookup is unchanged, and an unlinked repository still has no link at all.
        assert.deepEqual(await store.getBlobLink('r', d), { digest: d, size: 42 });
        assert.equal(await store.getCheckedBlobLink('t', d), undefined);
        assert.deepEqual(await store.getCheckedBlobLink('r', digestOf('other')), undefined);
        await store.clearBlobMissing(d);
        assert.deepEqual(await store.getCheckedBlobLink('s', d), { digest: d, size: 42, missing: false, deleting: false });
        await store.clearBlobMissing(d); // clearing nothing is fine
      });
    });

    describe('leases', () => {
      it('grants a lease to one holder at a time, renews it for that holder, and frees it on release', async () => {
        assert.equal(await store.acquireLease('scrub', 'a', 60_000), true);
        assert.equal(await store.acquireLease('scrub', 'b', 60_000), false);
        assert.equal(await store.acquireLease('scrub', 'a', 60_000), true);
        assert.equal(await store.acquireLease('other', 'b', 60_000), true);
        await store.releaseLease('scrub', 'b'); // not b's: stays with a
        assert.equal(await store.acquireLease('scrub', 'b', 60_000), false);
        await store.releaseLease('scrub', 'a');
        assert.equal(await store.acquireLease('scrub', 'b', 60_000), true);
      });

      it('lets another holder take a lease once it has expired', async () => {
        assert.equal(await store.acquireLease('short', 'a', 30), true);
        const deadline = Date.now() + 5000;
        // The expiry is the store's (Redis keeps time itself), so poll for it rather than assume a clock.
        while (!(await store.acquireLease('short', 'b', 60_000))) {
          assert.ok(Date.now() < deadline, 'an expired lease was never released');
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.equal(await store.acquireLease('short', 'a', 60_000), false);
      });
    });

    describe('repositories', () => {
      it('exists once a blob or a manifest was linked, and stays', async () => {
        assert.equal(await store.repositoryExists('blobs-only'), false);
        assert.equal(await store.repositoryExists('manifests-only'), false);
        await store.linkBlob('blobs-only', { digest: digestOf('x'), size: 1 });
        await store.putManifest('manifests-only', manifest('m'), []);
        assert.equal(await store.repositoryExists('blobs-only'), true);
        assert.equal(await store.repositoryExists('manifests-only'), true);
        assert.equal(await store.repositoryExists('manifests'), false);
        await store.unlinkBlob('blobs-only', digestOf('x'));
        assert.equal(await store.repositoryExists('blobs-only'), true);
      });

      it('lists the catalog in byte order with paging', async () => {
        assert.deepEqual(await store.listRepositories({}), []);
        const repos = ['zeta', 'alpha/beta', 'alpha', 'alpha-x', 'alpha.x', 'alpha_x', 'b/c/d', '0num'];
        for (const [i, repo] of repos.entries()) {
          if (i % 2) await store.linkBlob(repo, { digest: digestOf(repo), size: 1 });
          else await store.putManifest(repo, manifest(repo), ['t']);
        }
        await store.putManifest('alpha', manifest('again'), []); // listed once
        const sorted = [...repos].sort(byteOrder);
        assert.deepEqual(await store.listRepositories({}), sorted);
        assert.deepEqual(await store.listRepositories({ n: 3 }), sorted.slice(0, 3));
        assert.deepEqual(await store.listRepositories({ n: 3, last: sorted[2] }), sorted.slice(3, 6));
        assert.deepEqual(await store.listRepositories({ last: 'alpha/' }), sorted.slice(sorted.indexOf('alpha/beta')));
        assert.deepEqual(await store.listRepositories({ last: 'zeta' }), []);
        assert.deepEqual(await store.listRepositories({ n: 0 }), []);
      });

      it('pages a large catalog without gaps or repeats', async () => {
        const repos = Array.from({ length: 250 }, (_, i) => `org/repo-${i}`);
        await Promise.all(repos.map((repo) => store.linkBlob(repo, { digest: digestOf(repo), size: 1 })));
        const seen: string[] = [];
        let last: string | undefined;
        for (;;) {
          const page = await store.listRepositories({ n: 40, last });
          if (page.length === 0) break;
          seen.push(...page);
          last = page[page.length - 1];
        }
        assert.deepEqual(seen, [...repos].sort(byteOrder));
      });
    });

    describe('upload sessions', () => {
      it('creates, reads and deletes a session with every field', async () => {
        const s = session('u1', { offset: 10, leaseUntil: 5000, driverState: '{"uploadId":"abc","parts":[1,2]}' });
        await store.createUpload(s);
        assert.deepEqual(await store.getUpload('u1'), s);
        assert.equal(await store.getUpload('missing'), undefined);
        await store.deleteUpload('u1');
        assert.equal(await store.getUpload('u1'), undefined);
        await store.deleteUpload('u1'); // already gone: no error
      });

      it('updates only when the revision still matches', async () => {
        await store.createUpload(session('u', { leaseUntil: 9, driverState: 'x' }));
        const next = session('u', { offset: 100, revision: 1, updatedAt: 2000 });
        assert.equal(await store.updateUpload('u', 0, next), true);
        assert.deepEqual(await store.getUpload('u'), next);
        assert.equal(await store.updateUpload('u', 0, session('u', { offset: 5, revision: 1 })), false);
        assert.deepEqual(await store.getUpload('u'), next);
        assert.equal(await store.updateUpload('gone', 0, session('gone', { revision: 1 })), false);
        assert.equal(await store.getUpload('gone'), undefined);
        // Fields left out of `next` are gone afterwards (a replace, not a merge).
        assert.equal('leaseUntil' in ((await store.getUpload('u')) ?? {}), false);
        assert.equal(await store.updateUpload('u', 1, { ...next, revision: 2, leaseUntil: 7 }), true);
        assert.deepEqual(await store.getUpload('u'), { ...next, revision: 2, leaseUntil: 7 });
      });

      it('lets exactly one of many concurrent updaters win', async () => {
        await store.createUpload(session('race', { revision: 3 }));
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.updateUpload('race', 3, session('race', { revision: 4, offset: i + 1, updatedAt: 2000 + i }))),
        );
        assert.equal(results.filter(Boolean).length, 1);
        const winner = results.indexOf(true);
        assert.deepEqual(await store.getUpload('race'), session('race', { revision: 4, offset: winner + 1, updatedAt: 2000 + winner }));
      });

      it('lists stale sessions for the expiry sweep', async () => {
        await store.createUpload(session('old1', { updatedAt: 100 }));
        await store.createUpload(session('old2', { updatedAt: 200 }));
        await store.createUpload(session('fresh', { updatedAt: 900 }));
        await store.createUpload(session('refreshed', { updatedAt: 150 }));
        assert.equal(await store.updateUpload('refreshed', 0, session('refreshed', { revision: 1, updatedAt: 950 })), true);

        const stale = await store.listStaleUploads(500, 10);
        assert.deepEqual(stale.map((s) => s.id).sort(), ['old1', 'old2']);
        assert.deepEqual(
          stale.find((s) => s.id === 'old1'),
          session('old1', { updatedAt: 100 }),
        );
        assert.equal((await store.listStaleUploads(500, 1)).length, 1);
        assert.deepEqual(await store.listStaleUploads(100, 10), []); // strictly before

        await store.deleteUpload('old1');
        assert.deepEqual(
          (await store.listStaleUploads(500, 10)).map((s) => s.id),
          ['old2'],
        );
        assert.deepEqual((await store.listStaleUploads(10_000, 10)).map((s) => s.id).sort(), ['fresh', 'old2', 'refreshed']);
      });
    });

    it('answers ping', async () => {
      await store.ping();
    });
  });
}
