// The management API's repository and tag listings (docs/management-api.md): sizes, push and pull
// times, search, sorting, paging with Link, tag details (immutable, platforms), and with auth on,
// only the repositories the caller may pull.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { dayOf } from '../../storage-drivers/metadata/pull-types.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { blob, OCI_INDEX, OCI_MANIFEST, RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import type { RepositorySummary, TagSummary } from '../../ui/src/wire.js';

type RepoEntry = RepositorySummary;
type TagEntry = TagSummary;

async function json<T>(res: Response): Promise<T> {
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as T;
}

describe('management API: repositories and tags (auth off)', () => {
  let reg: TestRegistry;
  let c: RegistryClient;
  /** Expected sizes: each manifest, config and layer once per repository. */
  const sizes = new Map<string, number>();
  const pushedAt = Date.now();

  before(async () => {
    reg = await startTestRegistry({ config: { gc: { enabled: false }, immutableTags: { rules: [{ repositories: 'team/**', tags: ['v*'] }] } } });
    c = new RegistryClient(reg.url);
    const push = async (repo: string, tag: string, layers: number[]) => {
      const img = await c.pushImage(repo, tag, layers);
      sizes.set(repo, (sizes.get(repo) ?? 0) + img.manifest.size + img.config.size + img.layers.reduce((s, l) => s + l.size, 0));
      return img;
    };
    await push('alpha/small', 'latest', [100]);
    await push('team/big', 'v1', [5000, 3000]);
    const a = await push('team/multi', 'amd64', [700]);
    const b = await push('team/multi', 'arm64', [800]);
    const index = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [a, b].map((i, n) => ({
          mediaType: OCI_MANIFEST,
          digest: i.manifest.digest,
          size: i.manifest.size,
          platform: { os: 'linux', architecture: n ? 'arm64' : 'amd64' },
        })),
      }),
    );
    await c.pushManifest('team/multi', 'v2', index, OCI_INDEX);
    // The children are already counted under their own tags: the index adds only its own bytes.
    sizes.set('team/multi', (sizes.get('team/multi') ?? 0) + index.size);
    // A second tag on the same manifest adds nothing.
    await c.pushManifest('team/multi', 'also-amd64', a.manifest);
    await push('zeta/mid', 'latest', [2000]);
    const now = Date.now();
    const entry = (repo: string, byTag: Array<[string, number, number]>) => ({
      repo,
      day: dayOf(now),
      byTag: byTag.map(([tag, count, last]) => ({ tag, count, last })),
      byDigest: [],
    });
    await reg.metadata.pulls.recordPulls({
      id: 'pulls-1',
      keepDays: 30,
      now,
      entries: [
        entry('team/multi', [
          ['v2', 5, now - 1000],
          ['arm64', 2, now - 500],
        ]),
        entry('zeta/mid', [['latest', 1, now - 100]]),
      ],
    });
  });
  after(async () => reg?.close());

  it('lists every repository with tag count, deduplicated size, push and pull times', async () => {
    const body = await json<{ repositories: RepoEntry[]; next?: string }>(await c.fetch('/api/v1/repositories'));
    assert.deepEqual(
      body.repositories.map((r) => r.name),
      ['alpha/small', 'team/big', 'team/multi', 'zeta/mid'],
    );
    assert.equal(body.next, undefined);
    for (const r of body.repositories) assert.equal(r.sizeBytes, sizes.get(r.name), r.name);
    const multi = body.repositories.find((r) => r.name === 'team/multi') as RepoEntry;
    assert.equal(multi.tagCount, 4);
    assert.equal(multi.pulls, 7);
    assert.ok(Date.parse(multi.lastPulledAt ?? '') > 0);
    assert.ok(Date.parse(multi.lastPushedAt ?? '') >= pushedAt - 1000);
    const small = body.repositories.find((r) => r.name === 'alpha/small') as RepoEntry;
    assert.equal(small.pulls, 0);
    assert.equal(small.lastPulledAt, null);
  });

  it('searches by substring and sorts by size, push and pull time', async () => {
    const names = async (query: string) =>
      (await json<{ repositories: RepoEntry[] }>(await c.fetch(`/api/v1/repositories?${query}`))).repositories.map((r) => r.name);
    assert.deepEqual(await names('q=team'), ['team/big', 'team/multi']);
    const bySize = [...sizes].sort((x, y) => y[1] - x[1]).map(([name]) => name);
    assert.deepEqual(await names('sort=size&order=desc'), bySize);
    assert.deepEqual(await names('sort=size&order=asc'), [...bySize].reverse());
    assert.deepEqual(await names('sort=lastPush&order=desc'), ['zeta/mid', 'team/multi', 'team/big', 'alpha/small']);
    // Never pulled sorts last either way.
    assert.deepEqual(await names('sort=lastPull&order=desc'), ['zeta/mid', 'team/multi', 'alpha/small', 'team/big']);
    assert.deepEqual(await names('sort=lastPull&order=asc'), ['team/multi', 'zeta/mid', 'alpha/small', 'team/big']);
  });

  it('pages with n and last, and a Link header to the next page', async () => {
    const first = await c.fetch('/api/v1/repositories?sort=size&order=desc&n=3');
    const body = await json<{ repositories: RepoEntry[]; next?: string }>(first);
    assert.equal(body.repositories.length, 3);
    const link = first.headers.get('link') ?? '';
    const m = /^<([^>]+)>; rel="next"$/.exec(link);
    assert.ok(m, link);
    assert.equal(body.next, body.repositories[2]?.name);
    const second = await c.fetch(m[1] as string);
    const rest = await json<{ repositories: RepoEntry[]; next?: string }>(second);
    assert.equal(second.headers.get('link'), null);
    const all = [...body.repositories, ...rest.repositories].map((r) => r.name);
    assert.deepEqual(
      all,
      [...sizes].sort((x, y) => y[1] - x[1]).map(([name]) => name),
    );
  });

  it('refuses bad sort, order and n with 400, not 500', async () => {
    for (const query of ['sort=color', 'order=up', 'n=x', 'n=5000']) {
      const res = await c.fetch(`/api/v1/repositories?${query}`);
      assert.equal(res.status, 400, query);
    }
    const res = await c.fetch('/api/v1/repositories/team/multi/tags?sort=size');
    assert.equal(res.status, 400);
  });

  it("lists a repository's tags with digest, size, pulls, immutability and an index's platforms", async () => {
    const body = await json<{ repository: string; tags: TagEntry[] }>(await c.fetch('/api/v1/repositories/team/multi/tags'));
    assert.equal(body.repository, 'team/multi');
    assert.deepEqual(
      body.tags.map((t) => t.tag),
      ['also-amd64', 'amd64', 'arm64', 'v2'],
    );
    const v2 = body.tags.find((t) => t.tag === 'v2') as TagEntry;
    assert.equal(v2.mediaType, OCI_INDEX);
    assert.equal(v2.immutable, true);
    assert.equal(v2.pulls, 5);
    assert.deepEqual(v2.platforms, [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ]);
    assert.equal(v2.sizeBytes, sizes.get('team/multi'));
    const amd = body.tags.find((t) => t.tag === 'amd64') as TagEntry;
    assert.equal(amd.immutable, false);
    assert.deepEqual(amd.platforms, []);
    assert.equal(amd.lastPulledAt, null);
    assert.equal(amd.mediaType, OCI_MANIFEST);
    assert.ok(Date.parse(amd.pushedAt) >= pushedAt - 1000);
  });

  it('searches, sorts and pages tags', async () => {
    const tags = async (query: string) =>
      (await json<{ tags: TagEntry[] }>(await c.fetch(`/api/v1/repositories/team/multi/tags?${query}`))).tags.map((t) => t.tag);
    assert.deepEqual(await tags('q=amd'), ['also-amd64', 'amd64']);
    assert.deepEqual(await tags('sort=pulls&order=desc'), ['v2', 'arm64', 'also-amd64', 'amd64']);
    assert.deepEqual(await tags('sort=lastPull&order=desc'), ['arm64', 'v2', 'also-amd64', 'amd64']);
    assert.deepEqual(await tags('sort=name&order=desc'), ['v2', 'arm64', 'amd64', 'also-amd64']);
    const first = await c.fetch('/api/v1/repositories/team/multi/tags?sort=pulls&order=desc&n=2');
    assert.deepEqual(
      (await json<{ tags: TagEntry[] }>(first)).tags.map((t) => t.tag),
      ['v2', 'arm64'],
    );
    const next = /^<([^>]+)>; rel="next"$/.exec(first.headers.get('link') ?? '');
    assert.ok(next);
    assert.deepEqual(
      (await json<{ tags: TagEntry[] }>(await c.fetch(next[1] as string))).tags.map((t) => t.tag),
      ['also-amd64', 'amd64'],
    );
  });

  it('answers NAME_UNKNOWN for an unknown repository and NAME_INVALID for a bad name', async () => {
    const res = await c.fetch('/api/v1/repositories/no/such/tags');
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'NAME_UNKNOWN');
    const bad = await c.fetch('/api/v1/repositories/Bad..Name/tags');
    assert.equal(bad.status, 400);
    assert.equal((await c.fetch('/api/v1/repositories/team/multi/other')).status, 404);
  });
});

describe('management API: repositories with auth on', () => {
  let plain: TestRegistry;
  let reg: TestRegistry;
  let auth: Auth;
  let work: string;

  async function tokenFor(user: keyof typeof PASSWORDS, scope?: string): Promise<string> {
    const res = await fetch(`${reg.url}/auth/token?service=berth${scope === undefined ? '' : `&scope=${encodeURIComponent(scope)}`}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }
  async function names(user: keyof typeof PASSWORDS | undefined): Promise<string[]> {
    const headers: Record<string, string> = user === undefined ? {} : { authorization: `Bearer ${await tokenFor(user)}` };
    const body = await json<{ repositories: RepoEntry[] }>(await fetch(`${reg.url}/api/v1/repositories`, { headers }));
    return body.repositories.map((r) => r.name);
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-api-mgmt-'));
    await addUsers(work);
    auth = await createAuth({ ...baseConfig, enabled: true }, { dataDir: work, log: { info() {}, warn() {}, error() {} } });
    // Filled before auth goes on: the repositories are the subject here, not pushing.
    plain = await startTestRegistry({ config: { gc: { enabled: false } } });
    const c = new RegistryClient(plain.url);
    for (const repo of ['public/tool', 'team/app', 'secret/vault', 'other/thing']) await c.pushImage(repo, 'latest');
    const shared = plain;
    reg = await startTestRegistry({
      config: { gc: { enabled: false } },
      driver: async () => shared.driver,
      metadata: async () => shared.metadata,
      deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) },
    });
  });
  after(async () => {
    // Both registries run on one store: the first one's close closes it.
    await reg?.app.close();
    if (reg) await rm(reg.dir, { recursive: true, force: true });
    await plain?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('shows each caller only the repositories it may pull; the catalog operator sees all', async () => {
    assert.deepEqual(await names(undefined), ['public/tool']);
    assert.deepEqual(await names('carol'), ['public/tool']);
    assert.deepEqual(await names('bob'), ['public/tool', 'secret/vault', 'team/app']);
    assert.deepEqual(await names('alice'), ['other/thing', 'public/tool', 'secret/vault', 'team/app']);
  });

  it('needs pull on the repository for its tags', async () => {
    const carol = { authorization: `Bearer ${await tokenFor('carol')}` };
    assert.equal((await fetch(`${reg.url}/api/v1/repositories/secret/vault/tags`, { headers: carol })).status, 403);
    assert.equal((await fetch(`${reg.url}/api/v1/repositories/secret/vault/tags`)).status, 401);
    // Like the registry routes: the token names the scope (a token without it gets the challenge to fetch one).
    const bob = { authorization: `Bearer ${await tokenFor('bob', 'repository:secret/vault:pull')}` };
    const body = await json<{ tags: TagEntry[] }>(await fetch(`${reg.url}/api/v1/repositories/secret/vault/tags`, { headers: bob }));
    assert.deepEqual(
      body.tags.map((t) => t.tag),
      ['latest'],
    );
  });

  it('needs pull on the repository for its entry', async () => {
    const carol = { authorization: `Bearer ${await tokenFor('carol')}` };
    assert.equal((await fetch(`${reg.url}/api/v1/repositories/secret/vault`, { headers: carol })).status, 403);
    assert.equal((await fetch(`${reg.url}/api/v1/repositories/secret/vault`)).status, 401);
    const bob = { authorization: `Bearer ${await tokenFor('bob', 'repository:secret/vault:pull')}` };
    const entry = await json<RepoEntry>(await fetch(`${reg.url}/api/v1/repositories/secret/vault`, { headers: bob }));
    assert.equal(entry.name, 'secret/vault');
    assert.equal(entry.tagCount, 1);
  });
});
