// What every MetadataStore's event log (store.events, event-types.ts) must do, and which changes record
// what; run by test/metadata/events.test.ts on the embedded store, Redis and Redis Cluster.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newRecordId, type ChangeRecord, type DeadLetter, type EventOrigin, type LoggedRecord } from '../../storage-drivers/metadata/event-types.js';
import { ImmutableTagError, MissingReferencesError, TagsChangedError, type ManifestRecord, type MetadataStore } from '../../storage-drivers/metadata/types.js';
import type { StoreTuning } from '../helpers/metadata-stores.js';
import { digestOf, eachStore, type MetadataStoreFixture } from './metadata-store.contract.js';

const user: EventOrigin = { actor: 'alice', actorKind: 'user', address: '10.0.0.7', requestId: 'req-1', userAgent: 'docker/27.0' };
const gc: EventOrigin = { actor: 'gc', actorKind: 'system', reason: 'untagged' };
const IMAGE = 'application/vnd.oci.image.manifest.v1+json';

function manifest(name: string, extra: Partial<ManifestRecord> = {}): ManifestRecord {
  return { digest: digestOf(name), mediaType: IMAGE, size: 100 + name.length, references: [], createdAt: 1000, ...extra };
}

function pull(i: number): ChangeRecord {
  return {
    id: newRecordId(),
    at: Date.now(),
    origin: { actor: 'bob', actorKind: 'user' },
    kind: 'pull',
    repository: 'lib/app',
    digest: digestOf(`p${i}`),
    tag: `t${i}`,
  };
}

/** Relays every outbox (Redis; the embedded store has none), then reads the whole log, oldest first. */
async function logged(store: MetadataStore): Promise<LoggedRecord[]> {
  for (let rounds = 0; (await store.events.relay(1000)) > 0; rounds++) assert.ok(rounds < 100, 'relay does not end');
  const all: LoggedRecord[] = [];
  let after: string | undefined;
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 1000, 'paging does not end');
    const page = await store.events.read(after, 100);
    if (page.length === 0) return all;
    all.push(...page);
    after = page[page.length - 1]?.position;
  }
}

async function records(store: MetadataStore): Promise<ChangeRecord[]> {
  return (await logged(store)).map((l) => l.record);
}

/** The record without its id, time and origin, after checking those: a fresh id, made during the change, from `origin`. */
function bare(record: ChangeRecord | undefined, origin: EventOrigin, from: number): Record<string, unknown> {
  assert.ok(record, 'no record');
  const { id, at, origin: got, ...rest } = record;
  assert.match(id, /^[0-9a-z]{18}$/);
  assert.ok(at >= from && at <= Date.now(), `at ${at} is not during the change (from ${from})`);
  assert.deepEqual(got, origin);
  return rest;
}

/** Records grouped by repository (a stable sort): the log keeps the order within each repository only. */
function inRepositoryOrder(records: Record<string, unknown>[]): Record<string, unknown>[] {
  return [...records].sort((a, b) => String(a.repository).localeCompare(String(b.repository)));
}

/** Resolves once the clock has passed `t` (so what follows is logged at t + 1 or later). */
async function clockPast(t: number): Promise<void> {
  for (let i = 0; Date.now() <= t; i++) {
    assert.ok(i < 1000, 'the clock does not move');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

function letter(id: string, attempts = 1): DeadLetter {
  return { id, record: pull(attempts), attempts, lastError: 'HTTP 503', deadAt: 1_800_000_000_000 };
}

export function runMetadataEventsContract(name: string, setup: (tuning?: StoreTuning) => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore events contract: ${name}`, () => {
    let store: MetadataStore;
    eachStore(
      () => setup(),
      (s) => {
        store = s;
      },
    );

    describe('changes', () => {
      it('records a manifest put with its tags, what each pointed at before, and whether it created the repository', async () => {
        const from = Date.now();
        const a = manifest('a', { artifactType: 'application/vnd.example.sbom', subject: digestOf('subject') });
        const b = manifest('b');
        await store.putManifest('lib/app', a, ['v1', 'latest', 'v1'], { event: user });
        await store.putManifest('lib/app', b, ['latest', 'v2'], { event: user });
        await store.putManifest('lib/app', manifest('c'), [], { event: user });
        const [first, second, third, ...more] = await records(store);
        assert.deepEqual(more, []);
        assert.deepEqual(bare(first, user, from), {
          kind: 'manifest_put',
          repository: 'lib/app',
          digest: a.digest,
          mediaType: IMAGE,
          size: a.size,
          artifactType: 'application/vnd.example.sbom',
          subject: digestOf('subject'),
          tags: ['v1', 'latest'],
          previous: ['', ''],
          repositoryCreated: true,
        });
        assert.deepEqual(bare(second, user, from), {
          kind: 'manifest_put',
          repository: 'lib/app',
          digest: b.digest,
          mediaType: IMAGE,
          size: b.size,
          tags: ['latest', 'v2'],
          previous: [a.digest, ''],
          repositoryCreated: false,
        });
        assert.deepEqual(bare(third, user, from), {
          kind: 'manifest_put',
          repository: 'lib/app',
          digest: digestOf('c'),
          mediaType: IMAGE,
          size: manifest('c').size,
          tags: [],
          previous: [],
          repositoryCreated: false,
        });
        assert.equal(new Set([first?.id, second?.id, third?.id]).size, 3);
      });

      it('records nothing for changes without an event origin, nor for refused ones', async () => {
        const m = manifest('m', { references: [digestOf('layer')] });
        await store.linkBlob('r', { digest: digestOf('layer'), size: 1 });
        await store.putManifest('r', m, ['v1']);
        await assert.rejects(
          store.putManifest('r', manifest('other'), ['v1'], { immutable: ['v1'], event: user }),
          (err: unknown) => err instanceof ImmutableTagError,
        );
        await assert.rejects(
          store.putManifest('r', manifest('needy'), ['v2'], { required: { blobs: [digestOf('absent')], manifests: [] }, event: user }),
          (err: unknown) => err instanceof MissingReferencesError,
        );
        await assert.rejects(store.deleteManifest('r', m.digest, { expectedTags: ['v9'], event: user }), (err: unknown) => err instanceof TagsChangedError);
        assert.equal(await store.deleteTag('r', 'v1'), true);
        assert.ok(await store.gc.deleteManifestIfUnused('r', m.digest, { untaggedBefore: Date.now() + 60_000, orphanReferrers: false }));
        assert.equal(await store.unlinkBlob('r', digestOf('layer')), true);
        await store.putManifest('r', manifest('n'), []);
        assert.deepEqual(await store.deleteManifest('r', digestOf('n')), []);
        assert.deepEqual(await logged(store), []);
        assert.equal(await store.events.head(), undefined);
      });

      it('records a manifest deletion with the tags it dropped, and nothing when nothing was linked', async () => {
        const from = Date.now();
        const m = manifest('m');
        await store.putManifest('lib/app', m, ['v2', 'v1']);
        await store.putManifest('lib/app', manifest('n', { mediaType: 'application/vnd.oci.image.index.v1+json' }), []);
        assert.deepEqual(await store.deleteManifest('lib/app', m.digest, { expectedTags: ['v1', 'v2'], event: user }), ['v1', 'v2']);
        assert.equal(await store.deleteManifest('lib/app', m.digest, { event: user }), undefined);
        assert.equal(await store.deleteManifest('lib/app', digestOf('never'), { event: user }), undefined);
        assert.deepEqual(await store.deleteManifest('lib/app', digestOf('n'), { event: user }), []);
        const [first, second, ...more] = await records(store);
        assert.deepEqual(more, []);
        assert.deepEqual(bare(first, user, from), { kind: 'manifest_deleted', repository: 'lib/app', digest: m.digest, mediaType: IMAGE, tags: ['v1', 'v2'] });
        assert.deepEqual(bare(second, user, from), {
          kind: 'manifest_deleted',
          repository: 'lib/app',
          digest: digestOf('n'),
          mediaType: 'application/vnd.oci.image.index.v1+json',
          tags: [],
        });
      });

      it('records a tag deletion with the digest it pointed at, and nothing when no tag was removed', async () => {
        const from = Date.now();
        const m = manifest('m');
        await store.putManifest('lib/app', m, ['v1', 'v2']);
        assert.equal(await store.deleteTag('lib/app', 'v1', { event: user }), true);
        assert.equal(await store.deleteTag('lib/app', 'v1', { event: user }), false);
        assert.equal(await store.deleteTag('lib/app', 'v2', { expected: digestOf('else'), event: user }), false);
        assert.equal(await store.deleteTag('lib/app', 'v2', { expected: m.digest, event: user }), true);
        const all = await records(store);
        assert.equal(all.length, 2);
        assert.deepEqual(bare(all[0], user, from), { kind: 'tag_deleted', repository: 'lib/app', tag: 'v1', digest: m.digest });
        assert.deepEqual(bare(all[1], user, from), { kind: 'tag_deleted', repository: 'lib/app', tag: 'v2', digest: m.digest });
      });

      it('records blob links (a push unless told otherwise, or a mount) and the unlinks that removed a link', async () => {
        const from = Date.now();
        const [d1, d2] = [digestOf('d1'), digestOf('d2')];
        await store.linkBlob('lib/a', { digest: d1, size: 10 }, { event: user });
        await store.linkBlob('lib/a', { digest: d2, size: 20 }, { via: 'mount', fromRepository: 'lib/b', event: user });
        await store.linkBlob('lib/c', { digest: d1, size: 10 }, { via: 'mount', event: user });
        await store.putManifest('lib/d', manifest('m'), []);
        await store.linkBlob('lib/d', { digest: d2, size: 20 }, { event: user });
        assert.equal(await store.unlinkBlob('lib/a', d1, { event: user }), true);
        assert.equal(await store.unlinkBlob('lib/a', d1, { event: user }), false);
        assert.equal(await store.unlinkBlob('lib/a', digestOf('never'), { event: user }), false);
        const all = (await records(store)).map((r) => bare(r, user, from));
        assert.deepEqual(inRepositoryOrder(all), [
          { kind: 'blob_linked', repository: 'lib/a', digest: d1, size: 10, via: 'push', repositoryCreated: true },
          { kind: 'blob_linked', repository: 'lib/a', digest: d2, size: 20, via: 'mount', fromRepository: 'lib/b', repositoryCreated: false },
          { kind: 'blob_unlinked', repository: 'lib/a', digest: d1 },
          { kind: 'blob_linked', repository: 'lib/c', digest: d1, size: 10, via: 'mount', repositoryCreated: true },
          { kind: 'blob_linked', repository: 'lib/d', digest: d2, size: 20, via: 'push', repositoryCreated: false },
        ]);
      });

      it('records a garbage-collection deletion with its tags, and nothing for a dry run or a manifest that stays', async () => {
        const from = Date.now();
        const later = Date.now() + 60_000;
        const untagged = manifest('untagged');
        const referrer = manifest('sig', { subject: digestOf('gone') });
        await store.putManifest('r', untagged, []);
        await store.putManifest('r', manifest('tagged'), ['v1']);
        await store.putManifest('r', referrer, ['sig']);
        assert.ok(await store.gc.deleteManifestIfUnused('r', untagged.digest, { untaggedBefore: later, orphanReferrers: false, dryRun: true, event: gc }));
        assert.equal(await store.gc.deleteManifestIfUnused('r', digestOf('tagged'), { untaggedBefore: later, orphanReferrers: false, event: gc }), undefined);
        assert.equal(await store.gc.deleteManifestIfUnused('r', digestOf('never'), { untaggedBefore: later, orphanReferrers: false, event: gc }), undefined);
        assert.deepEqual(await store.gc.deleteManifestIfUnused('r', untagged.digest, { untaggedBefore: later, orphanReferrers: false, event: gc }), untagged);
        assert.deepEqual(await store.gc.deleteManifestIfUnused('r', referrer.digest, { orphanReferrers: true, event: gc }), referrer);
        const all = (await records(store)).map((r) => bare(r, gc, from));
        assert.deepEqual(all, [
          { kind: 'manifest_deleted', repository: 'r', digest: untagged.digest, mediaType: IMAGE, tags: [] },
          { kind: 'manifest_deleted', repository: 'r', digest: referrer.digest, mediaType: IMAGE, tags: ['sig'] },
        ]);
      });

      it('logs the changes of each repository in the order they were made, the seq counting up by one', async () => {
        const history = async (repo: string) => {
          const m = manifest(`${repo}-m`);
          await store.linkBlob(repo, { digest: digestOf(`${repo}-layer`), size: 1 }, { event: user });
          await store.putManifest(repo, m, ['v1'], { event: user });
          await store.deleteTag(repo, 'v1', { event: user });
          await store.putManifest(repo, m, ['v2'], { event: user });
          await store.deleteManifest(repo, m.digest, { event: user });
          await store.unlinkBlob(repo, digestOf(`${repo}-layer`), { event: user });
        };
        await Promise.all(['one', 'two', 'three'].map(history));
        const all = await logged(store);
        assert.deepEqual(
          all.map((l) => l.seq),
          all.map((_, i) => i + 1),
        );
        assert.equal(new Set(all.map((l) => l.position)).size, all.length);
        for (const repo of ['one', 'two', 'three']) {
          const mine = all.map((l) => l.record).filter((r) => 'repository' in r && r.repository === repo);
          assert.deepEqual(
            mine.map((r) => r.kind),
            ['blob_linked', 'manifest_put', 'tag_deleted', 'manifest_put', 'manifest_deleted', 'blob_unlinked'],
            repo,
          );
        }
      });
    });

    describe('the log', () => {
      it('appends records as they are, keeping their ids', async () => {
        await store.events.append([]);
        assert.equal(await store.events.head(), undefined);
        const given: ChangeRecord[] = [
          { id: newRecordId(), at: 5, origin: gc, kind: 'blob_deleted', digest: digestOf('gone'), size: 9 },
          { id: newRecordId(), at: 6, origin: gc, kind: 'pulls', repository: 'lib/app', from: 1, to: 2, count: 3, tags: { v1: 2, latest: 1 } },
          { id: newRecordId(), at: 7, origin: gc, kind: 'blob_corrupt', digest: digestOf('bad'), detail: 'digest mismatch' },
        ];
        await store.events.append(given);
        assert.deepEqual(
          (await logged(store)).map((l) => l.record),
          given,
        );
      });

      it('pages through the log by position', async () => {
        const given = Array.from({ length: 25 }, (_, i) => pull(i));
        await store.events.append(given.slice(0, 10));
        await store.events.append(given.slice(10));
        const seen: LoggedRecord[] = [];
        let after: string | undefined;
        for (let pages = 0; ; pages++) {
          assert.ok(pages < 10, 'paging does not end');
          const page = await store.events.read(after, 7);
          if (page.length === 0) break;
          assert.ok(page.length <= 7);
          seen.push(...page);
          after = page[page.length - 1]?.position;
        }
        assert.deepEqual(
          seen.map((l) => l.record.id),
          given.map((r) => r.id),
        );
        assert.deepEqual(
          seen.map((l) => l.seq),
          given.map((_, i) => i + 1),
        );
        const third = seen[2] as LoggedRecord;
        assert.deepEqual(
          (await store.events.read(third.position, 3)).map((l) => l.seq),
          [4, 5, 6],
        );
        assert.deepEqual(await store.events.read(undefined, 0), []);
        await assert.rejects(store.events.read('not a position', 5), RangeError);
      });

      it('lists the newest records first, before a position', async () => {
        await store.events.append(Array.from({ length: 12 }, (_, i) => pull(i)));
        const newest = await store.events.recent(5);
        assert.deepEqual(
          newest.map((l) => l.seq),
          [12, 11, 10, 9, 8],
        );
        const older = await store.events.recent(5, (newest[4] as LoggedRecord).position);
        assert.deepEqual(
          older.map((l) => l.seq),
          [7, 6, 5, 4, 3],
        );
        const oldest = await store.events.recent(5, (older[4] as LoggedRecord).position);
        assert.deepEqual(
          oldest.map((l) => l.seq),
          [2, 1],
        );
        assert.deepEqual(await store.events.recent(5, (oldest[1] as LoggedRecord).position), []);
        assert.deepEqual(await store.events.recent(0), []);
        await assert.rejects(store.events.recent(5, 'nope'), RangeError);
      });

      it('finds the position to read after to replay from a point in time', async () => {
        assert.equal(await store.events.positionBefore(Date.now()), undefined);
        const early = [pull(1), pull(2), pull(3)];
        const late = [pull(4), pull(5)];
        await store.events.append(early);
        const t = Date.now();
        await clockPast(t);
        await store.events.append(late);
        const ids = async (position: string | undefined) => (await store.events.read(position, 10)).map((l) => l.record.id);
        assert.deepEqual(
          await ids(await store.events.positionBefore(t + 1)),
          late.map((r) => r.id),
        );
        assert.deepEqual(
          await ids(await store.events.positionBefore(0)),
          [...early, ...late].map((r) => r.id),
        );
        assert.deepEqual(await ids(await store.events.positionBefore(Date.now() + 60_000)), []);
      });

      it('reports its head: the newest position, its seq and the length', async () => {
        assert.equal(await store.events.head(), undefined);
        await store.events.append([pull(1), pull(2), pull(3)]);
        const all = await logged(store);
        assert.deepEqual(await store.events.head(), { position: all[2]?.position, seq: 3, length: 3 });
      });
    });

    describe('endpoint state', () => {
      it('changes only by compare-and-set on the revision, which it bumps by one', async () => {
        assert.equal(await store.events.getEndpoint('hook'), undefined);
        assert.equal(await store.events.updateEndpoint('hook', 1, { revision: 2 }), false, 'no state: only revision 0 creates');
        assert.equal(await store.events.updateEndpoint('hook', 0, { revision: 1, cursor: 'c0', cursorSeq: 0 }), true);
        assert.deepEqual(await store.events.getEndpoint('hook'), { revision: 1, cursor: 'c0', cursorSeq: 0 });
        assert.equal(await store.events.updateEndpoint('hook', 0, { revision: 1 }), false, 'stale');
        assert.equal(await store.events.updateEndpoint('hook', 1, { revision: 2, cursor: 'c1', delivered: 5, lastError: 'timeout' }), true);
        assert.deepEqual(await store.events.getEndpoint('hook'), { revision: 2, cursor: 'c1', delivered: 5, lastError: 'timeout' });
        assert.equal(await store.events.updateEndpoint('alpha', 0, { revision: 1 }), true);
        assert.deepEqual(await store.events.listEndpoints(), ['alpha', 'hook']);
      });

      it('lets exactly one of concurrent updates from the same revision win', async () => {
        assert.equal(await store.events.updateEndpoint('hook', 0, { revision: 1 }), true);
        const won = await Promise.all(
          Array.from({ length: 12 }, (_, i) => store.events.updateEndpoint('hook', 1, { revision: 2, holder: `p${i}`, leaseUntil: 99 })),
        );
        assert.equal(won.filter(Boolean).length, 1);
        const winner = won.indexOf(true);
        assert.deepEqual(await store.events.getEndpoint('hook'), { revision: 2, holder: `p${winner}`, leaseUntil: 99 });
      });
    });

    describe('dead letters', () => {
      it('keeps them per endpoint in id order, replaced by id, at most `max`, the oldest dropped first', async () => {
        for (const id of ['a3', 'a1', 'a2']) await store.events.putDeadLetter('hook', letter(id), 10);
        await store.events.putDeadLetter('other', letter('b1'), 10);
        const ids = async (endpoint: string, after?: string, limit = 10) => (await store.events.listDeadLetters(endpoint, after, limit)).map((l) => l.id);
        assert.deepEqual(await ids('hook'), ['a1', 'a2', 'a3']);
        assert.deepEqual(await ids('other'), ['b1']);
        assert.equal(await store.events.countDeadLetters('hook'), 3);

        await store.events.putDeadLetter('hook', letter('a2', 9), 10);
        assert.equal(await store.events.countDeadLetters('hook'), 3);
        const [replaced, ...rest] = await store.events.listDeadLetters('hook', 'a1', 1);
        assert.deepEqual(rest, []);
        assert.equal(replaced?.id, 'a2');
        assert.equal(replaced.attempts, 9);
        assert.deepEqual(await ids('hook', 'a3'), []);
        assert.deepEqual(await ids('hook', undefined, 0), []);

        await store.events.putDeadLetter('hook', letter('a4'), 3);
        assert.deepEqual(await ids('hook'), ['a2', 'a3', 'a4']);
        assert.equal(await store.events.deleteDeadLetter('hook', 'a3'), true);
        assert.equal(await store.events.deleteDeadLetter('hook', 'a3'), false);
        assert.equal(await store.events.deleteDeadLetter('nobody', 'a3'), false);
        assert.deepEqual(await ids('hook'), ['a2', 'a4']);
        assert.equal(await store.events.countDeadLetters('hook'), 2);
        assert.equal(await store.events.countDeadLetters('nobody'), 0);
        assert.deepEqual(await ids('other'), ['b1']);
      });

      it('drops as many of the oldest as it takes when the maximum is lowered', async () => {
        for (let i = 10; i < 40; i++) await store.events.putDeadLetter('hook', letter(`l${i}`), 100);
        await store.events.putDeadLetter('hook', letter('l40'), 2);
        assert.deepEqual(
          (await store.events.listDeadLetters('hook', undefined, 100)).map((l) => l.id),
          ['l39', 'l40'],
        );
        assert.equal(await store.events.countDeadLetters('hook'), 2);
      });

      it('returns each letter as it was put', async () => {
        const given = letter(newRecordId(), 4);
        await store.events.putDeadLetter('hook', given, 10);
        assert.deepEqual(await store.events.listDeadLetters('hook', undefined, 10), [given]);
      });
    });
  });

  describe(`MetadataStore events contract, a short log: ${name}`, () => {
    const maxLength = 10;
    let store: MetadataStore;
    eachStore(
      () => setup({ eventLogMaxLength: maxLength }),
      (s) => {
        store = s;
      },
    );

    it('drops the oldest records beyond its maximum length, and the seq shows the gap', async () => {
      const given = Array.from({ length: 300 }, (_, i) => pull(i));
      for (let i = 0; i < given.length; i += 50) await store.events.append(given.slice(i, i + 50));
      for (let i = 0; i < 5; i++) await store.linkBlob('lib/app', { digest: digestOf(`late${i}`), size: i }, { event: user });
      const all = await logged(store);
      const head = await store.events.head();
      assert.ok(head);
      assert.equal(head.seq, 305);
      assert.equal(head.length, all.length);
      // Redis trims whole stream nodes (MAXLEN ~), so it may keep more than the maximum, never fewer.
      assert.ok(all.length >= maxLength && all.length < 300, `kept ${all.length}`);
      assert.equal(all[0]?.seq, 305 - all.length + 1, 'the first kept record shows how many were dropped');
      assert.deepEqual(
        all.map((l) => l.seq),
        all.map((_, i) => 305 - all.length + 1 + i),
      );
      assert.deepEqual(
        all.slice(-maxLength, -5).map((l) => l.record.id),
        given.slice(-5).map((r) => r.id),
      );
      assert.deepEqual(
        all.slice(-5).map((l) => l.record.kind),
        Array(5).fill('blob_linked'),
      );
    });
  });
}
