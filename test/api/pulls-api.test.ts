// The pulls API: parameters and their errors, tag pages with Link, and access with auth on (the
// registry resource `stats`, or pull on the repository itself).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import type { RepositoryPullReport } from '../../server/registry/stats/pull-report.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { OCI_MANIFEST, RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const CONFIG = { gc: { enabled: false }, stats: { flushSeconds: 3600, pullDays: 60 } };

async function errorOf(res: Response): Promise<{ status: number; code: string | undefined; message: string | undefined }> {
  const body = (await res.json()) as { errors?: { code: string; message: string }[] };
  return { status: res.status, code: body.errors?.[0]?.code, message: body.errors?.[0]?.message };
}

describe('pulls API (auth off)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ config: CONFIG });
    const client = new RegistryClient(reg.url);
    const { manifest } = await client.pushImage('team/app', 't0');
    for (const tag of ['t1', 't2', 't3', 't4']) await client.pushManifest('team/app', tag, manifest);
    for (const tag of ['t1', 't3', 't3']) {
      const res = await client.fetch(`/v2/team/app/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
      await res.arrayBuffer();
    }
    await reg.app.pullCounter?.flush();
  });
  after(async () => reg?.close());

  it('pages the tags with n and last and a Link to the next page', async () => {
    const first = await fetch(`${reg.url}/api/v1/pulls?repository=team/app&n=2&days=7`);
    assert.equal(first.status, 200);
    const page1 = (await first.json()) as RepositoryPullReport;
    assert.equal(page1.count, 3);
    assert.equal(page1.daily.length, 7);
    assert.deepEqual(
      page1.tags.map((t) => [t.tag, t.count]),
      [
        ['t0', 0],
        ['t1', 1],
      ],
    );
    assert.equal(page1.tags[0]?.lastPulled, null);
    const link = first.headers.get('link') ?? '';
    const next = /^<([^>]+)>; rel="next"$/.exec(link)?.[1];
    assert.ok(next, link);
    const page2 = (await (await fetch(`${reg.url}${next}`)).json()) as RepositoryPullReport;
    assert.deepEqual(
      page2.tags.map((t) => [t.tag, t.count]),
      [
        ['t2', 0],
        ['t3', 2],
      ],
    );
    const last = await fetch(`${reg.url}/api/v1/pulls?repository=team/app&n=2&last=t3`);
    assert.equal(last.headers.get('link'), null);
    assert.deepEqual(
      ((await last.json()) as RepositoryPullReport).tags.map((t) => t.tag),
      ['t4'],
    );
  });

  it('answers one tag with its series', async () => {
    const res = await fetch(`${reg.url}/api/v1/pulls?repository=team/app&tag=t3&days=2`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { tag: string; count: number; daily: { date: string; count: number }[] };
    assert.equal(body.tag, 't3');
    assert.equal(body.count, 2);
    assert.deepEqual(
      body.daily.map((d) => d.count),
      [0, 2],
    );
  });

  it('refuses bad parameters with the nearest spec code and a message that says what to send', async () => {
    const cases: [string, number, string, RegExp][] = [
      ['', 400, 'NAME_INVALID', /repository=<name>/],
      ['repository=Team/App', 400, 'NAME_INVALID', /lowercase/],
      ['repository=team/app&tag=-bad', 400, 'TAG_INVALID', /invalid tag/],
      ['repository=team/app&days=0', 400, 'PAGINATION_NUMBER_INVALID', /from 1 to 60/],
      ['repository=team/app&days=61', 400, 'PAGINATION_NUMBER_INVALID', /stats\.pullDays/],
      ['repository=team/app&days=x', 400, 'PAGINATION_NUMBER_INVALID', /whole number/],
      ['repository=team/app&n=5000', 400, 'PAGINATION_NUMBER_INVALID', /at most 1000/],
      ['repository=team/app&tag=t1&n=2', 400, 'PAGINATION_NUMBER_INVALID', /one tag/],
      ['repository=team/app&repository=team/other', 400, 'NAME_INVALID', /more than once/],
      ['repository=nobody/here', 404, 'NAME_UNKNOWN', /nobody\/here/],
      ['repository=team/app&tag=never', 404, 'MANIFEST_UNKNOWN', /never pulled/],
    ];
    for (const [query, status, code, message] of cases) {
      const got = await errorOf(await fetch(`${reg.url}/api/v1/pulls?${query}`));
      assert.equal(got.status, status, query);
      assert.equal(got.code, code, query);
      assert.match(got.message ?? '', message, query);
    }
  });
});

describe('pulls API (auth on)', () => {
  let reg: TestRegistry;
  let auth: Auth;
  let work: string;

  async function tokenFor(user: keyof typeof PASSWORDS, scope: string): Promise<string> {
    const res = await fetch(`${reg.url}/auth/token?service=berth&scope=${encodeURIComponent(scope)}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  function read(repo: string, token?: string): Promise<Response> {
    return fetch(`${reg.url}/api/v1/pulls?repository=${repo}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-pulls-api-'));
    await addUsers(work);
    auth = await createAuth(
      { ...baseConfig, enabled: true, rules: [...(baseConfig.rules ?? []), { registry: 'stats', users: ['carol'], allow: ['*'] }] },
      { dataDir: work, log: { info() {}, warn() {}, error() {} } },
    );
    reg = await startTestRegistry({
      config: CONFIG,
      deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) },
    });
    const push = await tokenFor('alice', 'repository:team/app:pull,push');
    await new RegistryClient(reg.url, { authorization: `Bearer ${push}` }).pushImage('team/app', 'v1');
  });
  after(async () => {
    await reg?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('challenges an anonymous caller for pull on the repository', async () => {
    const res = await read('team/app');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /scope="repository:team\/app:pull"/);
  });

  it('lets a user who may pull the repository read its statistics, and nobody else’s', async () => {
    const token = await tokenFor('bob', 'repository:team/app:pull');
    const res = await read('team/app', token);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as RepositoryPullReport).repository, 'team/app');
    const other = await read('secret/app', await tokenFor('alice', 'repository:secret/app:pull'));
    assert.ok(other.status === 401 || other.status === 403, String(other.status));
  });

  it('lets an operator with `*` on registry:stats read any repository without pull on it', async () => {
    const token = await tokenFor('carol', 'registry:stats:*');
    const res = await read('team/app', token);
    assert.equal(res.status, 200);
    const denied = await read('team/app', await tokenFor('bob', 'registry:stats:*'));
    assert.equal(denied.status, 401);
  });
});
