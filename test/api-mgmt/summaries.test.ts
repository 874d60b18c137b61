// The repository and tag listings summarize only the page they answer (by name) or keep summaries
// per process (other sorts): paging through every sort still gives the whole sorted list, a push in
// this process shows in the next answer, and GET /api/v1/repositories/<name> answers one entry.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { dayOf } from '../../storage-drivers/metadata/pull-types.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

interface Entry {
  name?: string;
  tag?: string;
  sizeBytes: number;
  [field: string]: unknown;
}

async function json<T>(res: Response): Promise<T> {
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as T;
}

describe('management API: summaries of a page, and the per-process summary cache', () => {
  let reg: TestRegistry;
  let c: RegistryClient;

  before(async () => {
    reg = await startTestRegistry({ config: { gc: { enabled: false } } });
    c = new RegistryClient(reg.url);
    // Sizes out of name order, and two repositories of equal size (ties sort by name).
    const layers: Record<string, number[]> = { 'a/one': [3000], 'b/two': [100], 'c/three': [5000, 10], 'd/four': [100], 'e/five': [700], 'f/six': [4000] };
    for (const [repo, sizes] of Object.entries(layers)) await c.pushImage(repo, 'latest', sizes);
    for (const [i, size] of [400, 90, 2500, 1200, 60].entries()) await c.pushImage('many/builds', `t${i}`, [size]);
    const now = Date.now();
    await reg.metadata.pulls.recordPulls({
      id: 'summaries-1',
      keepDays: 30,
      now,
      entries: [
        { repo: 'e/five', day: dayOf(now), byTag: [{ tag: 'latest', count: 3, last: now - 100 }], byDigest: [] },
        {
          repo: 'many/builds',
          day: dayOf(now),
          byTag: [
            { tag: 't3', count: 9, last: now - 50 },
            { tag: 't1', count: 2, last: now - 10 },
          ],
          byDigest: [],
        },
      ],
    });
  });
  after(async () => reg?.close());

  /** Every entry, following the Link header page by page. */
  async function walk(path: string, n: number): Promise<Entry[]> {
    const out: Entry[] = [];
    let next: string | undefined = `${path}${path.includes('?') ? '&' : '?'}n=${n}`;
    while (next !== undefined) {
      const res = await c.fetch(next);
      const body = await json<{ repositories?: Entry[]; tags?: Entry[] }>(res);
      out.push(...(body.repositories ?? body.tags ?? []));
      next = /^<([^>]+)>; rel="next"$/.exec(res.headers.get('link') ?? '')?.[1];
    }
    return out;
  }

  it('pages of two give the same repositories, with sizes, as one page, in every sort and order', async () => {
    for (const sort of ['name', 'size', 'lastPush', 'lastPull']) {
      for (const order of ['asc', 'desc']) {
        const query = `/api/v1/repositories?sort=${sort}&order=${order}`;
        const whole = (await json<{ repositories: Entry[] }>(await c.fetch(query))).repositories;
        assert.equal(whole.length, 7, query);
        assert.deepEqual(await walk(query, 2), whole, query);
      }
    }
    const names = async (query: string) => (await walk(`/api/v1/repositories?${query}`, 2)).map((r) => r.name);
    assert.deepEqual(await names('sort=name&order=desc'), ['many/builds', 'f/six', 'e/five', 'd/four', 'c/three', 'b/two', 'a/one']);
    assert.deepEqual((await names('sort=size&order=desc')).slice(0, 3), ['many/builds', 'c/three', 'f/six']);
    assert.deepEqual(await names('q=o&sort=name'), ['a/one', 'b/two', 'd/four']);
    // Every entry of a by-name page carries its summary, not just its name.
    const [first] = await walk('/api/v1/repositories?sort=name', 2);
    assert.ok((first?.sizeBytes ?? 0) > 3000, JSON.stringify(first));
  });

  it('pages of two give the same tags, with sizes, as one page, in every sort and order', async () => {
    for (const sort of ['name', 'pushedAt', 'pulls', 'lastPull']) {
      for (const order of ['asc', 'desc']) {
        const query = `/api/v1/repositories/many/builds/tags?sort=${sort}&order=${order}`;
        const whole = (await json<{ tags: Entry[] }>(await c.fetch(query))).tags;
        assert.equal(whole.length, 5, query);
        assert.deepEqual(await walk(query, 2), whole, query);
      }
    }
    const tags = async (query: string) => (await walk(`/api/v1/repositories/many/builds/tags?${query}`, 2)).map((t) => t.tag);
    assert.deepEqual(await tags('sort=pulls&order=desc'), ['t3', 't1', 't0', 't2', 't4']);
    assert.deepEqual(await tags('sort=pushedAt&order=desc'), ['t4', 't3', 't2', 't1', 't0']);
    const sized = await walk('/api/v1/repositories/many/builds/tags?sort=pulls&order=desc', 2);
    assert.ok((sized[0]?.sizeBytes ?? 0) > 1200, JSON.stringify(sized[0]));
  });

  it('shows a push made through this process in the next size-sorted list and the repository entry', async () => {
    const sizeOf = async () =>
      (await json<{ repositories: Entry[] }>(await c.fetch('/api/v1/repositories?sort=size'))).repositories.find((r) => r.name === 'b/two')?.sizeBytes ?? 0;
    const before = await sizeOf();
    assert.equal((await json<Entry>(await c.fetch('/api/v1/repositories/b/two'))).sizeBytes, before);
    const img = await c.pushImage('b/two', 'bigger', [6000]);
    const grown = before + img.manifest.size + img.config.size + 6000;
    assert.equal(await sizeOf(), grown);
    const entry = await json<Entry>(await c.fetch('/api/v1/repositories/b/two'));
    assert.equal(entry.sizeBytes, grown);
    assert.equal(entry.tagCount, 2);
  });

  it('answers one repository with the fields of its list entry, NAME_UNKNOWN when unknown', async () => {
    const list = (await json<{ repositories: Entry[] }>(await c.fetch('/api/v1/repositories?q=e/five'))).repositories;
    assert.deepEqual(await json<Entry>(await c.fetch('/api/v1/repositories/e/five')), list[0]);
    const res = await c.fetch('/api/v1/repositories/no/such');
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'NAME_UNKNOWN');
    assert.equal((await c.fetch('/api/v1/repositories/Bad..Name')).status, 400);
    // The suffix routes still reach their handlers.
    assert.equal((await c.fetch('/api/v1/repositories/e/five/tags')).status, 200);
    assert.equal((await c.fetch('/api/v1/repositories/e/five/manifests/latest')).status, 200);
  });
});
