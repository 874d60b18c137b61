import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expandRecord, type RegistryEvent } from '../../server/registry/events/event.js';
import { actionPatternProblem, compileFilter, type EventFilterSpec } from '../../server/registry/events/filter.js';
import { D1, D2, IMAGE, INDEX, manifestPut, record } from './records.js';

function one(events: RegistryEvent[]): RegistryEvent {
  assert.equal(events.length, 1);
  return events[0] as RegistryEvent;
}

const pushed = one(expandRecord(manifestPut({ repository: 'team/app', tags: ['v1.2.0', 'latest'], previous: ['', ''] })));
const pushedByDigest = one(expandRecord(manifestPut({ repository: 'team/app', mediaType: INDEX })));
const moved = expandRecord(manifestPut({ repository: 'team/app', tags: ['latest'], previous: [D2] }))[1] as RegistryEvent;
const tagDeleted = one(expandRecord(record('tag_deleted', { repository: 'ci/build', tag: 'pr-12', digest: D1 })));
const blobPushed = one(expandRecord(record('blob_linked', { repository: 'team/app', digest: D1, size: 1, via: 'push', repositoryCreated: false })));
const collected = one(expandRecord(record('blob_deleted', { digest: D1 })));
const pulls = one(expandRecord(record('pulls', { repository: 'team/app', from: 0, to: 1, count: 3, tags: { 'v1.2.0': 3 } })));
const ALL = [pushed, pushedByDigest, moved, tagDeleted, blobPushed, collected, pulls];

function passing(spec: EventFilterSpec): RegistryEvent[] {
  const filter = compileFilter(spec);
  return ALL.filter(filter);
}

describe('event filters', () => {
  it('lets everything through when no list is set, or every list is empty', () => {
    assert.deepEqual(passing({}), ALL);
    assert.deepEqual(passing({ actions: [], repositories: [], tags: [], mediaTypes: [] }), ALL);
  });

  it('actions: exact names, families and *', () => {
    assert.deepEqual(passing({ actions: ['tag.deleted'] }), [tagDeleted]);
    assert.deepEqual(passing({ actions: ['manifest.*'] }), [pushed, pushedByDigest]);
    assert.deepEqual(passing({ actions: ['tag.*', 'blob.pushed'] }), [moved, tagDeleted, blobPushed]);
    assert.deepEqual(passing({ actions: ['*'] }), ALL);
    // A family is a whole first word: `blob.*` is not `blob` as a prefix of something else.
    assert.deepEqual(passing({ actions: ['blob.*'] }), [blobPushed, collected]);
  });

  it('names action patterns that can never match', () => {
    assert.equal(actionPatternProblem('manifest.pushed'), undefined);
    assert.equal(actionPatternProblem('pulls.*'), undefined);
    assert.match(actionPatternProblem('manifest.push') ?? '', /unknown action "manifest\.push": use one of .*manifest\.pushed/);
    assert.match(actionPatternProblem('image.*') ?? '', /unknown action/);
    assert.match(actionPatternProblem('manifest*') ?? '', /unknown action/);
  });

  it('repositories: globs as in the auth rules; events of no repository do not match', () => {
    assert.deepEqual(passing({ repositories: ['ci/*'] }), [tagDeleted]);
    assert.deepEqual(passing({ repositories: ['team/**'] }), [pushed, pushedByDigest, moved, blobPushed, pulls]);
    assert.deepEqual(
      passing({ repositories: ['**'] }),
      ALL.filter((e) => e !== collected),
    );
    assert.deepEqual(passing({ repositories: ['team'] }), []);
  });

  it('tags: an event passes when its tag or one of its tags matches; events without tags do not', () => {
    assert.deepEqual(passing({ tags: ['v*'] }), [pushed, pulls]);
    assert.deepEqual(passing({ tags: ['latest'] }), [pushed, moved]);
    assert.deepEqual(passing({ tags: ['/^pr-\\d+$/'] }), [tagDeleted]);
    assert.deepEqual(passing({ tags: ['v?.*'] }), [pushed, pulls]);
    assert.deepEqual(passing({ tags: ['nothing'] }), []);
  });

  it('mediaTypes: exact, or a prefix ending in *; events without a media type do not match', () => {
    assert.deepEqual(passing({ mediaTypes: [INDEX] }), [pushedByDigest]);
    assert.deepEqual(passing({ mediaTypes: ['application/vnd.oci.image.*'] }), [pushed, pushedByDigest, moved]);
    assert.deepEqual(passing({ mediaTypes: [IMAGE.slice(0, -1)] }), [], 'exact means exact');
  });

  it('every list set must match', () => {
    assert.deepEqual(passing({ actions: ['manifest.pushed', 'tag.moved'], tags: ['v*'] }), [pushed]);
    assert.deepEqual(passing({ actions: ['manifest.pushed', 'tag.moved'], tags: ['latest'], repositories: ['team/*'] }), [pushed, moved]);
    assert.deepEqual(passing({ actions: ['tag.deleted'], repositories: ['team/**'] }), []);
  });
});
