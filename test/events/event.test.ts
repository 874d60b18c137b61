import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EVENT_ACTIONS, eventTags, expandRecord, type RegistryEvent } from '../../server/registry/events/event.js';
import type { ChangeRecord } from '../../storage-drivers/metadata/event-types.js';
import { AT, D1, D2, D3, GC, IMAGE, INDEX, RETENTION, manifestPut, record } from './records.js';

const TIME = new Date(AT).toISOString();
const USER_PARTS = { actor: { name: 'ci-bot', kind: 'robot' }, request: { id: 'req-1', address: '10.0.0.7', userAgent: 'docker/27.0' } } as const;

function actions(events: RegistryEvent[]): string[] {
  return events.map((e) => e.action);
}

describe('expandRecord', () => {
  it('a manifest put with new tags is one manifest.pushed carrying every tag, with the record id', () => {
    const rec = manifestPut({ tags: ['v1', 'latest'], previous: ['', ''], artifactType: 'application/vnd.example+json', subject: D2 });
    const events = expandRecord(rec);
    assert.deepEqual(events, [
      {
        id: rec.id,
        recordId: rec.id,
        action: 'manifest.pushed',
        time: TIME,
        repository: 'team/app',
        target: { digest: D1, mediaType: IMAGE, size: 1234, tags: ['v1', 'latest'], artifactType: 'application/vnd.example+json', subject: D2 },
        ...USER_PARTS,
      },
    ]);
  });

  it('a put without tags (by digest) is a manifest.pushed with no tags', () => {
    const [event, ...rest] = expandRecord(manifestPut({ mediaType: INDEX }));
    assert.equal(rest.length, 0);
    assert.equal(event?.action, 'manifest.pushed');
    assert.deepEqual(event?.target.tags, []);
    assert.equal(event?.target.mediaType, INDEX);
  });

  it('a put into a new repository that moves a tag: repository.created, manifest.pushed, tag.moved, ids numbered in that order', () => {
    const rec = manifestPut({ tags: ['latest', 'v2', 'same'], previous: [D2, '', D1], repositoryCreated: true, id: 'r-move' });
    const events = expandRecord(rec);
    assert.deepEqual(actions(events), ['repository.created', 'manifest.pushed', 'tag.moved']);
    assert.deepEqual(
      events.map((e) => e.id),
      ['r-move.0', 'r-move.1', 'r-move.2'],
    );
    assert.ok(events.every((e) => e.recordId === 'r-move'));
    assert.deepEqual(events[0]?.target, {});
    assert.equal(events[0]?.repository, 'team/app');
    // A new tag ('v2') and a re-push of the same digest ('same') moved nothing.
    assert.deepEqual(events[2]?.target, { tag: 'latest', digest: D1, mediaType: IMAGE, previousDigest: D2 });
  });

  it('gives the same events and ids every time a record is expanded (redelivery after a crash)', () => {
    const rec = manifestPut({ tags: ['a', 'b'], previous: [D2, D3], repositoryCreated: true });
    const first = expandRecord(rec);
    const again = expandRecord(structuredClone(rec));
    assert.deepEqual(again, first);
    assert.equal(new Set(first.map((e) => e.id)).size, first.length, 'ids are unique within a record');
  });

  it('events of one record share nothing: changing one leaves its siblings alone', () => {
    const events = expandRecord(manifestPut({ tags: ['x'], previous: [D2], repositoryCreated: true }));
    events[0]!.request!.id = 'changed';
    assert.equal(events[1]!.request!.id, 'req-1');
  });

  it('manifest_deleted is manifest.deleted with the dropped tags', () => {
    const rec = record('manifest_deleted', { repository: 'team/app', digest: D1, mediaType: IMAGE, tags: ['old', 'older'], origin: RETENTION });
    assert.deepEqual(expandRecord(rec), [
      {
        id: rec.id,
        recordId: rec.id,
        action: 'manifest.deleted',
        time: TIME,
        repository: 'team/app',
        target: { digest: D1, tags: ['old', 'older'], mediaType: IMAGE },
        actor: { name: 'retention', kind: 'system' },
        system: { policy: 'ci-builds', reason: 'keep_last' },
      },
    ]);
  });

  it('tag_deleted is tag.deleted with the tag and the digest it pointed at', () => {
    const [event] = expandRecord(record('tag_deleted', { repository: 'team/app', tag: 'v1', digest: D1 }));
    assert.equal(event?.action, 'tag.deleted');
    assert.deepEqual(event?.target, { tag: 'v1', digest: D1 });
  });

  it('blob_linked by an upload is blob.pushed; into a new repository it comes after repository.created', () => {
    const pushed = expandRecord(record('blob_linked', { repository: 'team/app', digest: D3, size: 99, via: 'push', repositoryCreated: false }));
    assert.deepEqual(actions(pushed), ['blob.pushed']);
    assert.deepEqual(pushed[0]?.target, { digest: D3, size: 99 });
    const created = expandRecord(record('blob_linked', { repository: 'new/repo', digest: D3, size: 99, via: 'push', repositoryCreated: true, id: 'r-b' }));
    assert.deepEqual(actions(created), ['repository.created', 'blob.pushed']);
    assert.deepEqual(
      created.map((e) => e.id),
      ['r-b.0', 'r-b.1'],
    );
  });

  it('blob_linked by a mount is blob.mounted with fromRepository when known', () => {
    const [known] = expandRecord(
      record('blob_linked', { repository: 'team/app', digest: D3, size: 5, via: 'mount', fromRepository: 'base/alpine', repositoryCreated: false }),
    );
    assert.equal(known?.action, 'blob.mounted');
    assert.deepEqual(known?.target, { digest: D3, size: 5, fromRepository: 'base/alpine' });
    const [unknown] = expandRecord(record('blob_linked', { repository: 'team/app', digest: D3, size: 5, via: 'mount', repositoryCreated: false }));
    assert.deepEqual(unknown?.target, { digest: D3, size: 5 });
  });

  it('blob_unlinked is blob.deleted in its repository', () => {
    const [event] = expandRecord(record('blob_unlinked', { repository: 'team/app', digest: D3 }));
    assert.equal(event?.action, 'blob.deleted');
    assert.equal(event?.repository, 'team/app');
    assert.deepEqual(event?.target, { digest: D3 });
  });

  it('blob_deleted (GC removed the bytes) is blob.collected, of no repository', () => {
    const rec = record('blob_deleted', { digest: D3, size: 4096, origin: GC });
    const [event] = expandRecord(rec);
    assert.equal(event?.action, 'blob.collected');
    assert.equal(event?.repository, undefined);
    assert.equal('repository' in event!, false);
    assert.deepEqual(event?.target, { digest: D3, size: 4096 });
    assert.deepEqual(event?.actor, { name: 'gc', kind: 'system' });
    assert.equal(event?.request, undefined, 'no request made it');
    assert.equal(event?.system, undefined, 'gc gives no policy or reason');
  });

  it('pulls is pulls.counted with the count, the interval and the per-tag counts', () => {
    const from = AT - 60_000;
    const [event] = expandRecord(record('pulls', { repository: 'team/app', from, to: AT, count: 7, tags: { latest: 5, v1: 2 } }));
    assert.equal(event?.action, 'pulls.counted');
    assert.deepEqual(event?.target, { count: 7, from: new Date(from).toISOString(), to: TIME, tagCounts: { latest: 5, v1: 2 } });
    assert.deepEqual(eventTags(event!).sort(), ['latest', 'v1']);
  });

  it('pull is manifest.pulled, with the tag when pulled by tag', () => {
    const [byTag] = expandRecord(record('pull', { repository: 'team/app', digest: D1, tag: 'latest', mediaType: IMAGE, size: 1234 }));
    assert.equal(byTag?.action, 'manifest.pulled');
    assert.deepEqual(byTag?.target, { digest: D1, tag: 'latest', mediaType: IMAGE, size: 1234 });
    const [byDigest] = expandRecord(record('pull', { repository: 'team/app', digest: D1 }));
    assert.deepEqual(byDigest?.target, { digest: D1 });
  });

  it('scrub findings are blob.corrupt and blob.missing with the detail', () => {
    const scrub = { actor: 'scrub', actorKind: 'system' } as const;
    const [corrupt] = expandRecord(record('blob_corrupt', { digest: D2, detail: 'sha256 mismatch', origin: scrub }));
    const [missing] = expandRecord(record('blob_missing', { digest: D3, origin: scrub }));
    assert.equal(corrupt?.action, 'blob.corrupt');
    assert.deepEqual(corrupt?.target, { digest: D2, detail: 'sha256 mismatch' });
    assert.equal(missing?.action, 'blob.missing');
    assert.deepEqual(missing?.target, { digest: D3 });
  });

  it('covers every action with some record kind', () => {
    const every: ChangeRecord[] = [
      manifestPut({ tags: ['t'], previous: [D2], repositoryCreated: true }),
      record('manifest_deleted', { repository: 'r', digest: D1, tags: [] }),
      record('tag_deleted', { repository: 'r', tag: 't', digest: D1 }),
      record('blob_linked', { repository: 'r', digest: D1, size: 1, via: 'push', repositoryCreated: false }),
      record('blob_linked', { repository: 'r', digest: D1, size: 1, via: 'mount', repositoryCreated: false }),
      record('blob_unlinked', { repository: 'r', digest: D1 }),
      record('blob_deleted', { digest: D1 }),
      record('pulls', { repository: 'r', from: 0, to: 1, count: 1, tags: {} }),
      record('pull', { repository: 'r', digest: D1 }),
      record('blob_corrupt', { digest: D1 }),
      record('blob_missing', { digest: D1 }),
    ];
    const seen = new Set(every.flatMap((r) => actions(expandRecord(r))));
    assert.deepEqual([...seen].sort(), [...EVENT_ACTIONS].sort());
  });

  it('records the origin as actor and request, leaving out what is not known', () => {
    const [event] = expandRecord(
      record('tag_deleted', { repository: 'r', tag: 't', digest: D1, origin: { actor: 'anonymous', actorKind: 'anonymous', address: '::1' } }),
    );
    assert.deepEqual(event?.actor, { name: 'anonymous', kind: 'anonymous' });
    assert.deepEqual(event?.request, { address: '::1' });
    assert.deepEqual(expandRecord(record('tag_deleted', { repository: 'r', tag: 't', digest: D1 }))[0]?.request, USER_PARTS.request);
  });
});
