// The quotas section of GET /api/v1/status (server/registry/quotas/overview.ts): top namespaces by
// usage, totals, and `complete` exact at the bound (no more namespaces is complete, one more is not).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { quotaOverview } from '../../server/registry/quotas/overview.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';

describe('quotaOverview', () => {
  let dir: string;
  let store: EmbeddedStore;
  const now = Date.now();
  const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as const;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-quota-overview-'));
    store = new EmbeddedStore({ path: join(dir, 'metadata') });
    const sizes: Array<[string, number]> = [
      ['a', 300],
      ['b', 100],
      ['c', 500],
    ];
    for (const [i, [ns, size]] of sizes.entries()) await store.quotas.charge(ns, digest(i), size, `${ns}/repo`, { now });
  });
  after(async () => {
    await store?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists the largest first with limit and percentage, and totals', async () => {
    const rules = [{ namespace: 'c', limitBytes: 400 }];
    const overview = await quotaOverview(store, rules, { now, top: 2 });
    assert.deepEqual(overview, {
      namespaces: 3,
      complete: true,
      totals: { usedBytes: 900, reservedBytes: 0, limitedNamespaces: 1, overLimit: 1 },
      top: [
        { namespace: 'c', rule: 'c', limitBytes: 400, usedBytes: 500, reservedBytes: 0, percent: 125 },
        { namespace: 'a', usedBytes: 300, reservedBytes: 0 },
      ],
    });
  });

  it('is complete when the bound takes every namespace, and says so when it does not', async () => {
    assert.equal((await quotaOverview(store, [], { now, maxNamespaces: 3 })).complete, true);
    const bounded = await quotaOverview(store, [], { now, maxNamespaces: 2 });
    assert.equal(bounded.complete, false);
    assert.equal(bounded.namespaces, 2);
    assert.equal(bounded.totals.usedBytes, 400);
  });
});
