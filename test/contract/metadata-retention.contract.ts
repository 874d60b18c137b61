// What every MetadataStore's retention records (store.retention, retention-types.ts) must do; run by
// test/metadata/*.test.ts for each store.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UntaggedEntry } from '../../storage-drivers/metadata/retention-types.js';
import type { ManifestRecord, MetadataStore } from '../../storage-drivers/metadata/types.js';
import { digestOf, eachStore, type MetadataStoreFixture } from './metadata-store.contract.js';

function manifest(name: string): ManifestRecord {
  return { digest: digestOf(name), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, references: [], createdAt: 1000 };
}

async function allUntagged(store: MetadataStore, repo: string, count: number): Promise<UntaggedEntry[]> {
  const out: UntaggedEntry[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await store.retention.untagged(repo, cursor, count);
    out.push(...page.entries);
    if (page.next === undefined) return out.sort((a, b) => (a.digest < b.digest ? -1 : 1));
    cursor = page.next;
  }
  throw new Error('untagged listing did not end');
}

export function runMetadataRetentionContract(name: string, setup: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore retention contract: ${name}`, () => {
    let store: MetadataStore;
    eachStore(setup, (s) => {
      store = s;
    });

    it('keeps one shared state document', async () => {
      assert.equal(await store.retention.loadState(), undefined);
      await store.retention.saveState('{"cursor":"a/b"}');
      await store.retention.saveState('{"cursor":"c"}');
      assert.equal(await store.retention.loadState(), '{"cursor":"c"}');
    });

    it('lists the manifests that lost a tag, with when, a page at a time', async () => {
      const repo = 'team/app';
      const records = Array.from({ length: 25 }, (_, i) => manifest(`m${i}`));
      for (const [i, m] of records.entries()) await store.putManifest(repo, m, [`t${i}`, `u${i}`]);
      await store.putManifest('other', manifest('elsewhere'), ['x']);
      await store.deleteTag('other', 'x');
      assert.deepEqual(await allUntagged(store, repo, 10), []);

      const before = Date.now();
      for (let i = 0; i < 12; i++) assert.equal(await store.deleteTag(repo, `t${i}`), true);
      const after = Date.now();
      const listed = await allUntagged(store, repo, 5);
      // A manifest that still has its other tag is listed too: "lost a tag", not "untagged now".
      assert.deepEqual(
        listed.map((e) => e.digest),
        records
          .slice(0, 12)
          .map((m) => m.digest)
          .sort(),
      );
      for (const e of listed) assert.ok(e.untaggedAt >= before && e.untaggedAt <= after, JSON.stringify(e));

      // Deleting the manifest drops its note.
      await store.deleteManifest(repo, records[0]!.digest);
      assert.equal((await allUntagged(store, repo, 100)).length, 11);
    });
  });
}
