// What every MetadataStore's quota records (store.quotas, quota-types.ts) must do; run by
// test/metadata/quotas.test.ts on the embedded store, Redis and Redis Cluster. Times are explicit `now` values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QuotaMetadata } from '../../storage-drivers/metadata/quota-types.js';
import { digestOf, eachStore, type MetadataStoreFixture } from './metadata-store.contract.js';

const T = 1_800_000_000_000;

export function runMetadataQuotaContract(name: string, setup: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore quota contract: ${name}`, () => {
    let quotas: QuotaMetadata;
    eachStore(setup, (s) => {
      quotas = s.quotas;
    });

    it('counts a digest once per namespace however many holders it has, and frees it with the last one', async () => {
      const d = digestOf('layer');
      const first = await quotas.charge('team', d, 100, 'b team/a', { now: T });
      assert.deepEqual(first, { ok: true, added: true, usage: { bytes: 100, digests: 1, reserved: 0 } });
      const second = await quotas.charge('team', d, 100, 'b team/b', { now: T });
      assert.equal(second.ok && second.added, false);
      // The same holder again (a retried push) adds nothing either.
      await quotas.charge('team', d, 100, 'b team/a', { now: T });
      assert.deepEqual(await quotas.usage('team', T), { bytes: 100, digests: 1, reserved: 0 });

      // Another namespace pays again.
      await quotas.charge('other', d, 100, 'b other', { now: T });
      assert.deepEqual(await quotas.usage('other', T), { bytes: 100, digests: 1, reserved: 0 });

      assert.equal(await quotas.release('team', d, 'b team/a'), false);
      assert.equal(await quotas.release('team', d, 'b team/a'), false, 'a second release of the same holder changes nothing');
      assert.deepEqual(await quotas.usage('team', T), { bytes: 100, digests: 1, reserved: 0 });
      assert.equal(await quotas.release('team', d, 'b team/b'), true);
      assert.deepEqual(await quotas.usage('team', T), { bytes: 0, digests: 0, reserved: 0 });
      assert.equal(await quotas.holds('team', d), false);
      assert.equal(await quotas.holds('other', d), true);
      assert.equal(await quotas.release('team', d, 'b team/b'), false);
      assert.deepEqual(await quotas.usage('team', T), { bytes: 0, digests: 0, reserved: 0 });
    });

    it('tells a blob link and a manifest of the same repository apart', async () => {
      const d = digestOf('both');
      await quotas.charge('team', d, 50, 'b team/a', { now: T });
      await quotas.charge('team', d, 50, 'm team/a', { now: T });
      assert.equal(await quotas.release('team', d, 'b team/a'), false);
      assert.equal((await quotas.usage('team', T)).bytes, 50);
      assert.equal(await quotas.release('team', d, 'm team/a'), true);
    });

    it('refuses a new digest over the limit and changes nothing, but never one the namespace already holds', async () => {
      await quotas.charge('team', digestOf('a'), 80, 'b team/x', { now: T, limit: 100 });
      const refused = await quotas.charge('team', digestOf('b'), 30, 'b team/x', { now: T, limit: 100 });
      assert.deepEqual(refused, { ok: false, usage: { bytes: 80, digests: 1, reserved: 0 } });
      assert.equal(await quotas.holds('team', digestOf('b')), false);
      // Exactly at the limit is allowed.
      assert.equal((await quotas.charge('team', digestOf('c'), 20, 'b team/x', { now: T, limit: 100 })).ok, true);
      // Already held: free, even with the namespace full.
      const again = await quotas.charge('team', digestOf('a'), 80, 'b team/y', { now: T, limit: 100 });
      assert.equal(again.ok && !again.added, true);
      assert.deepEqual(await quotas.usage('team', T), { bytes: 100, digests: 2, reserved: 0 });
    });

    it('counts live reservations against the limit, drops expired ones, and releases one as its blob is charged', async () => {
      assert.equal((await quotas.reserve('team', 'up1', 40, { now: T, until: T + 1000, limit: 100 })).ok, true);
      assert.equal((await quotas.reserve('team', 'up2', 40, { now: T, until: T + 1000, limit: 100 })).ok, true);
      assert.deepEqual(await quotas.usage('team', T), { bytes: 0, digests: 0, reserved: 80 });
      // up1 grows: its own earlier reservation is replaced, not added to.
      assert.equal((await quotas.reserve('team', 'up1', 60, { now: T, until: T + 1000, limit: 100 })).ok, true);
      const refused = await quotas.reserve('team', 'up1', 61, { now: T, until: T + 1000, limit: 100 });
      assert.deepEqual(refused, { ok: false, usage: { bytes: 0, digests: 0, reserved: 40 } });
      // A charge is checked against the other reservations, and ends its own.
      const tooBig = await quotas.charge('team', digestOf('x'), 61, 'b team/a', { now: T, limit: 100, reservation: 'up1' });
      assert.equal(tooBig.ok, false);
      const charged = await quotas.charge('team', digestOf('x'), 60, 'b team/a', { now: T, limit: 100, reservation: 'up1' });
      assert.equal(charged.ok, true);
      assert.deepEqual(await quotas.usage('team', T), { bytes: 60, digests: 1, reserved: 40 });
      // up2's expiry passes (its process died): it stops counting.
      assert.deepEqual(await quotas.usage('team', T + 1000), { bytes: 60, digests: 1, reserved: 0 });
      assert.equal((await quotas.reserve('team', 'up3', 40, { now: T + 1000, until: T + 2000, limit: 100 })).ok, true);
      await quotas.unreserve('team', 'up3');
      await quotas.unreserve('team', 'up3');
      assert.deepEqual(await quotas.usage('team', T + 1000), { bytes: 60, digests: 1, reserved: 0 });
    });

    it('lets concurrent reservations together reach the limit but never pass it', async () => {
      const results = await Promise.all(Array.from({ length: 25 }, (_, i) => quotas.reserve('team', `up${i}`, 10, { now: T, until: T + 60_000, limit: 100 })));
      assert.equal(results.filter((r) => r.ok).length, 10);
      assert.equal((await quotas.usage('team', T)).reserved, 100);
    });

    it('lets concurrent charges of new digests together reach the limit but never pass it', async () => {
      const results = await Promise.all(Array.from({ length: 25 }, (_, i) => quotas.charge('team', digestOf(`c${i}`), 10, 'b team/a', { now: T, limit: 95 })));
      assert.equal(results.filter((r) => r.ok).length, 9);
      assert.deepEqual(await quotas.usage('team', T), { bytes: 90, digests: 9, reserved: 0 });
    });

    it('pages through the digests of a namespace and lists namespaces in byte order', async () => {
      const want = new Map<string, number>();
      for (let i = 0; i < 23; i++) {
        want.set(digestOf(`p${i}`), i + 1);
        await quotas.charge('team', digestOf(`p${i}`), i + 1, 'b team/a', { now: T });
      }
      await quotas.charge('zeta', digestOf('z'), 1, 'b zeta', { now: T });
      await quotas.charge('alpha', digestOf('z'), 1, 'b alpha', { now: T });
      const seen = new Map<string, number>();
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await quotas.digests('team', cursor, 5);
        for (const d of page.digests) seen.set(d.digest, d.size);
        cursor = page.next;
        pages++;
        assert.ok(pages < 50, 'paging does not end');
      } while (cursor !== undefined);
      assert.deepEqual(seen, want);
      assert.deepEqual(await quotas.namespaces({ n: 10 }), ['alpha', 'team', 'zeta']);
      assert.deepEqual(await quotas.namespaces({ n: 1, last: 'alpha' }), ['team']);
      assert.deepEqual(await quotas.namespaces({ n: 10, last: 'team' }), ['zeta']);
    });

    it('replaces a namespace record with a recount, keeping reservations', async () => {
      await quotas.charge('team', digestOf('stale'), 500, 'b team/gone', { now: T });
      await quotas.reserve('team', 'up', 7, { now: T, until: T + 1000 });
      await quotas.replace('team', [
        { digest: digestOf('a'), size: 10, holders: ['b team/a', 'm team/b'] },
        { digest: digestOf('b'), size: 5, holders: ['b team/a'] },
      ]);
      assert.deepEqual(await quotas.usage('team', T), { bytes: 15, digests: 2, reserved: 7 });
      assert.equal(await quotas.holds('team', digestOf('stale')), false);
      assert.equal(await quotas.release('team', digestOf('a'), 'b team/a'), false);
      assert.equal(await quotas.release('team', digestOf('a'), 'm team/b'), true);
      await quotas.replace('team', []);
      assert.deepEqual(await quotas.usage('team', T), { bytes: 0, digests: 0, reserved: 7 });
    });
  });
}
