import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { open } from 'lmdb';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { key, under } from '../../storage-drivers/metadata/embedded-keys.js';
import type { ManifestRecord } from '../../storage-drivers/metadata/types.js';
import { digestOf } from '../contract/metadata-store.contract.js';

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'berth-tag-list-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const manifest = (n: number): ManifestRecord => ({
  digest: digestOf(`m${n}`),
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  size: 3,
  references: [],
  createdAt: n,
});

const byteOrder = (tags: Iterable<string>) => [...tags].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

/** Raw segments as stored, to see that splits happened and old values went. */
async function segmentKeys(path: string, repo: string): Promise<{ segments: number; legacy: boolean }> {
  const root = open<unknown, Buffer>({ path, maxDbs: 64, keyEncoding: 'binary', encoding: 'json' });
  try {
    const lists = root.openDB<string[], Buffer>({ name: 'tagLists', keyEncoding: 'binary', encoding: 'json' });
    return { segments: Array.from(lists.getKeys(under(repo))).length, legacy: lists.get(key(repo)) !== undefined };
  } finally {
    await root.close();
  }
}

describe('embedded store: the segmented tag list', () => {
  it('lists every tag in byte order, whole and after any tag, through random pushes and deletes', async () => {
    const path = join(scratch, 'random');
    const store = new EmbeddedStore({ path, tagListSegment: 4 });
    // Names that share prefixes and sort differently as bytes than as numbers.
    const pool = Array.from({ length: 120 }, (_, i) => (i % 3 === 0 ? `v${i}` : i % 3 === 1 ? `v${i}.0` : `rc-${i}`));
    const next = random(7);
    const pick = () => pool[Math.floor(next() * pool.length)] as string;
    const expected = new Map<string, number>();
    try {
      for (let step = 0; step < 400; step++) {
        const roll = next();
        if (roll < 0.7) {
          const n = step % 7;
          const tags = [pick(), pick(), pick()].slice(0, 1 + (step % 3));
          await store.putManifest('r', manifest(n), tags);
          for (const t of tags) expected.set(t, n);
        } else if (roll < 0.97) {
          const tag = pick();
          assert.equal(await store.deleteTag('r', tag), expected.delete(tag));
        } else {
          const n = step % 7;
          await store.deleteManifest('r', digestOf(`m${n}`));
          for (const [t, m] of expected) if (m === n) expected.delete(t);
        }
        if (step % 20 === 19) {
          const want = byteOrder(expected.keys());
          assert.deepEqual(await store.listTags('r', {}), want, `after step ${step}`);
          const last = pick();
          assert.deepEqual(
            await store.listTags('r', { last }),
            want.filter((t) => Buffer.compare(Buffer.from(t), Buffer.from(last)) > 0),
            `after ${last}, step ${step}`,
          );
        }
      }
      assert.ok(expected.size > 12, 'the run should leave enough tags to need several segments');
    } finally {
      await store.close();
    }
    const stored = await segmentKeys(path, 'r');
    assert.ok(stored.segments > 3, `expected the list split into segments, found ${stored.segments}`);
  });

  it('reads a store that kept the whole list as one value, and turns it into segments on the next change', async () => {
    const path = join(scratch, 'legacy');
    const store = new EmbeddedStore({ path, tagListSegment: 4 });
    await store.putManifest('r', manifest(1), ['a', 'b', 'c', 'd', 'e']);
    await store.close();
    // Rewrite the list the way stores before segments held it.
    const root = open<unknown, Buffer>({ path, maxDbs: 64, keyEncoding: 'binary', encoding: 'json' });
    const lists = root.openDB<string[], Buffer>({ name: 'tagLists', keyEncoding: 'binary', encoding: 'json' });
    root.transactionSync(() => {
      for (const k of Array.from(lists.getKeys(under('r')))) lists.remove(k);
      lists.put(key('r'), ['a', 'b', 'c', 'd', 'e']);
    });
    await root.close();

    const reopened = new EmbeddedStore({ path, tagListSegment: 4 });
    try {
      assert.deepEqual(await reopened.listTags('r', {}), ['a', 'b', 'c', 'd', 'e']);
      assert.deepEqual(await reopened.listTags('r', { last: 'b' }), ['c', 'd', 'e']);
      await reopened.putManifest('r', manifest(2), ['bb']);
      assert.deepEqual(await reopened.listTags('r', {}), ['a', 'b', 'bb', 'c', 'd', 'e']);
    } finally {
      await reopened.close();
    }
    assert.equal((await segmentKeys(path, 'r')).legacy, false);
  });

  it('keeps a repository whose name is a prefix of another apart from it', async () => {
    const store = new EmbeddedStore({ path: join(scratch, 'prefix'), tagListSegment: 2 });
    try {
      await store.putManifest('a', manifest(1), ['x1', 'x2', 'x3']);
      await store.putManifest('a/b', manifest(1), ['y1', 'y2', 'y3']);
      await store.deleteTag('a', 'x1');
      await store.putManifest('a', manifest(1), ['x0']);
      assert.deepEqual(await store.listTags('a', {}), ['x0', 'x2', 'x3']);
      assert.deepEqual(await store.listTags('a/b', {}), ['y1', 'y2', 'y3']);
    } finally {
      await store.close();
    }
  });
});
