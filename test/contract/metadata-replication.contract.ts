// What every MetadataStore's replication records (store.replication, replication-types.ts) must do; run
// by test/metadata/*.test.ts for each store.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ArtifactEntry, ReplicationMetadata } from '../../storage-drivers/metadata/replication-types.js';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import { eachStore, type MetadataStoreFixture } from './metadata-store.contract.js';

/** Keys a target repository and tag may make: separators, a nested path, non-ASCII (UTF-8 byte order is not UTF-16 order). */
const AWKWARD_KEYS = [
  'team/app:v1',
  'team/app:v1.0',
  'team/app/sub:latest',
  'team:x',
  'Zeta:1',
  'é/ü:ß',
  '日本/レポ:タグ',
  'team/app:v1-rc',
  'a:b/c',
  '\u{1F600}:emoji',
  'ﬀ:lig',
];

function byteOrder(keys: readonly string[]): string[] {
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

async function listAll(repl: ReplicationMetadata, rule: string, limit: number): Promise<ArtifactEntry[]> {
  const out: ArtifactEntry[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await repl.listArtifacts(rule, { after, limit });
    assert.ok(page.length <= limit, `page of ${page.length} over limit ${limit}`);
    out.push(...page);
    if (page.length < limit) return out;
    after = page[page.length - 1]!.key;
  }
  throw new Error('artifact listing did not end');
}

export function runMetadataReplicationContract(name: string, setup: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore replication contract: ${name}`, () => {
    let store: MetadataStore;
    eachStore(setup, (s) => {
      store = s;
    });

    it('stores a rule state by compare-and-set on its revision', async () => {
      const repl = store.replication;
      assert.equal(await repl.getRuleState('mirror'), undefined);
      assert.equal(await repl.updateRuleState('mirror', 1, '{"never":true}'), false, 'nothing stored yet: only 0 matches');
      assert.equal(await repl.getRuleState('mirror'), undefined);
      assert.equal(await repl.updateRuleState('mirror', 0, '{"runs":1}'), true);
      assert.deepEqual(await repl.getRuleState('mirror'), { revision: 1, state: '{"runs":1}' });
      assert.equal(await repl.updateRuleState('mirror', 0, '{"stale":true}'), false);
      assert.equal(await repl.updateRuleState('mirror', 2, '{"ahead":true}'), false);
      assert.deepEqual(await repl.getRuleState('mirror'), { revision: 1, state: '{"runs":1}' }, 'a refused update changes nothing');
      assert.equal(await repl.updateRuleState('mirror', 1, '{"runs":2}'), true);
      assert.deepEqual(await repl.getRuleState('mirror'), { revision: 2, state: '{"runs":2}' });
    });

    it('lets exactly one of two concurrent updates from one revision win', async () => {
      const repl = store.replication;
      const results = await Promise.all([repl.updateRuleState('race', 0, 'first'), repl.updateRuleState('race', 0, 'second')]);
      assert.equal(results.filter(Boolean).length, 1, JSON.stringify(results));
      const winner = results[0] ? 'first' : 'second';
      assert.deepEqual(await repl.getRuleState('race'), { revision: 1, state: winner });
    });

    it('loses no update when many writers retry their compare-and-set', async () => {
      const repl = store.replication;
      const writers = 12;
      const increment = async (): Promise<void> => {
        for (let attempt = 0; attempt < 200; attempt++) {
          const current = await repl.getRuleState('counter');
          const count = current === undefined ? 0 : (JSON.parse(current.state) as { count: number }).count;
          if (await repl.updateRuleState('counter', current?.revision ?? 0, JSON.stringify({ count: count + 1 }))) return;
        }
        throw new Error('no update won in 200 attempts');
      };
      await Promise.all(Array.from({ length: writers }, increment));
      assert.deepEqual(await repl.getRuleState('counter'), { revision: writers, state: JSON.stringify({ count: writers }) });
    });

    it('puts, gets and removes artifact records', async () => {
      const repl = store.replication;
      assert.deepEqual(await repl.getArtifacts('r', []), []);
      assert.deepEqual(await repl.getArtifacts('r', ['team/app:v1']), [undefined]);
      await repl.putArtifact('r', 'team/app:v1', '{"digest":"sha256:aa"}');
      await repl.putArtifact('r', 'team/app:v2', '{"digest":"sha256:bb"}');
      await repl.putArtifact('r', 'team/app:v1', '{"digest":"sha256:cc"}');
      assert.deepEqual(await repl.getArtifacts('r', ['team/app:v2', 'missing:x', 'team/app:v1', 'team/app:v2']), [
        '{"digest":"sha256:bb"}',
        undefined,
        '{"digest":"sha256:cc"}',
        '{"digest":"sha256:bb"}',
      ]);
      await repl.putArtifact('r', 'team/app:v1', undefined);
      await repl.putArtifact('r', 'never:stored', undefined);
      assert.deepEqual(await repl.getArtifacts('r', ['team/app:v1', 'team/app:v2']), [undefined, '{"digest":"sha256:bb"}']);
      assert.deepEqual(
        await repl.listArtifacts('r', { limit: 10 }),
        [{ key: 'team/app:v2', value: '{"digest":"sha256:bb"}' }],
        'a removed record is not listed',
      );
    });

    it('lists artifact records in byte order of the key, a page at a time', async () => {
      const repl = store.replication;
      for (const [i, k] of AWKWARD_KEYS.entries()) await repl.putArtifact('paged', k, `v${i}`);
      const expected = byteOrder(AWKWARD_KEYS).map((k) => ({ key: k, value: `v${AWKWARD_KEYS.indexOf(k)}` }));
      assert.deepEqual(await repl.listArtifacts('paged', { limit: 100 }), expected);
      for (const limit of [1, 2, 3, 5]) assert.deepEqual(await listAll(repl, 'paged', limit), expected, `limit ${limit}`);
      // `after` need not be a stored key: the page starts at the first key that sorts after it.
      assert.deepEqual(
        await repl.listArtifacts('paged', { after: 'team/app:v1.', limit: 2 }),
        expected.filter((e) => Buffer.compare(Buffer.from(e.key), Buffer.from('team/app:v1.')) > 0).slice(0, 2),
      );
      assert.deepEqual(await repl.listArtifacts('paged', { after: expected[expected.length - 1]!.key, limit: 5 }), []);
      assert.deepEqual(await repl.listArtifacts('paged', { limit: 0 }), []);
      assert.deepEqual(await repl.listArtifacts('empty', { limit: 5 }), []);
    });

    it('keeps rules apart, also where one name is a prefix of another', async () => {
      const repl = store.replication;
      const rules = ['a', 'a:b', 'a/b', 'ab', 'a:', '{a}', 'a}b'];
      for (const rule of rules) {
        assert.equal(await repl.updateRuleState(rule, 0, `state of ${rule}`), true, rule);
        await repl.putArtifact(rule, 'repo:tag', `record of ${rule}`);
        await repl.putArtifact(rule, `b:${rule}`, rule);
      }
      for (const rule of rules) {
        assert.deepEqual(await repl.getRuleState(rule), { revision: 1, state: `state of ${rule}` }, rule);
        assert.deepEqual(await repl.getArtifacts(rule, ['repo:tag']), [`record of ${rule}`], rule);
        assert.deepEqual(
          await listAll(repl, rule, 1),
          byteOrder(['repo:tag', `b:${rule}`]).map((k) => ({ key: k, value: k === 'repo:tag' ? `record of ${rule}` : rule })),
          rule,
        );
      }
      assert.deepEqual(await repl.getArtifacts('a', ['b:a:b', 'b:a']), [undefined, 'a']);
    });

    it('clears one rule: counts its records and leaves the others', async () => {
      const repl = store.replication;
      for (const rule of ['a', 'a:b', 'b']) {
        await repl.updateRuleState(rule, 0, rule);
        for (let i = 0; i < 3; i++) await repl.putArtifact(rule, `repo:${i}`, `${rule}${i}`);
      }
      await repl.putArtifact('a', 'repo:extra', 'x');
      await repl.putArtifact('a', 'repo:gone', 'x');
      await repl.putArtifact('a', 'repo:gone', undefined);
      // The count is of artifact records; the rule's state document goes with them.
      assert.equal(await repl.clearRule('a'), 4);
      assert.equal(await repl.getRuleState('a'), undefined);
      assert.deepEqual(await repl.listArtifacts('a', { limit: 10 }), []);
      assert.deepEqual(await repl.getArtifacts('a', ['repo:0', 'repo:extra']), [undefined, undefined]);
      for (const rule of ['a:b', 'b']) {
        assert.deepEqual(await repl.getRuleState(rule), { revision: 1, state: rule });
        assert.equal((await repl.listArtifacts(rule, { limit: 10 })).length, 3, rule);
      }
      assert.equal(await repl.clearRule('a'), 0, 'nothing left to clear');
      assert.equal(await repl.clearRule('never'), 0);
      // A cleared rule starts again from revision 0.
      assert.equal(await repl.updateRuleState('a', 0, 'again'), true);
      assert.deepEqual(await repl.getRuleState('a'), { revision: 1, state: 'again' });
    });
  });
}
