import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRobot } from '../../auth/robots.js';
import { type Harness, allows, basic, check, getToken, postToken, pull, push, startHarness } from './harness.js';
import { PASSWORDS, addUsers, baseConfig, decodePart } from './fixtures.js';

describe('auth: token flow', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(baseConfig, addUsers);
  });
  after(() => h.close());

  it('GET /v2/ without a token answers 401 with a Bearer challenge', async () => {
    const res = await fetch(`${h.url}/v2/`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${h.url}/auth/token",service="berth"`);
    const body = (await res.json()) as { errors: Array<{ code: string }> };
    assert.equal(body.errors[0]?.code, 'UNAUTHORIZED');
  });

  it('a challenge names every scope the request needs', async () => {
    const r = await check(h, [pull('secret/x'), push('alice/app')]);
    assert.equal(r.status, 401);
    assert.equal(r.challenge, `Bearer realm="${h.url}/auth/token",service="berth",scope="repository:secret/x:pull repository:alice/app:pull,push"`);
    assert.deepEqual(r.body.errors?.[0]?.detail, [
      { Type: 'repository', Name: 'secret/x', Action: 'pull' },
      { Type: 'repository', Name: 'alice/app', Action: 'pull' },
      { Type: 'repository', Name: 'alice/app', Action: 'push' },
    ]);
  });

  it('GET with Basic returns a token in the spec format', async () => {
    const t = await getToken(h, ['repository:team/a:pull,push'], basic('alice', PASSWORDS.alice));
    assert.equal(t.status, 200);
    assert.equal(t.body.token, t.body.access_token);
    assert.ok(t.body.expires_in >= 60);
    assert.match(t.body.issued_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal(t.body.refresh_token, undefined);
    assert.equal(t.headers.get('cache-control'), 'no-store');
    const header = decodePart(t.body.token, 0);
    assert.equal(header.alg, 'ES256');
    assert.equal(typeof header.kid, 'string');
    const claims = decodePart(t.body.token, 1);
    assert.equal(claims.iss, 'berth');
    assert.equal(claims.aud, 'berth');
    assert.equal(claims.sub, 'alice');
    assert.equal(typeof claims.jti, 'string');
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'team/a', actions: ['pull', 'push'] }]);
    const r = await check(h, [push('team/a')], t.body.token);
    assert.equal(r.status, 200);
    const v2 = await fetch(`${h.url}/v2/`, { headers: { authorization: `Bearer ${t.body.token}` } });
    assert.equal(v2.status, 200);
  });

  it('grants the intersection of what was asked and what is allowed', async () => {
    const t = await getToken(
      h,
      ['repository:team/locked:pull,push,delete', 'repository:secret/x:pull', 'registry:catalog:*', 'repository:alice/x:*'],
      basic('alice', PASSWORDS.alice),
    );
    assert.equal(t.status, 200);
    assert.deepEqual(decodePart(t.body.token, 1).access, [
      { type: 'repository', name: 'team/locked', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
      { type: 'repository', name: 'alice/x', actions: ['*'] },
    ]);
    assert.equal((await check(h, [{ type: 'registry', name: 'catalog', actions: ['*'] }], t.body.token)).status, 200);
    assert.equal((await check(h, [{ type: 'repository', name: 'alice/x', actions: ['delete'] }], t.body.token)).status, 200);
  });

  it('POST password grant with space-separated scopes, then refresh_token grant', async () => {
    const t = await postToken(h, {
      grant_type: 'password',
      username: 'bob',
      password: PASSWORDS.bob,
      scope: 'repository:secret/x:pull repository:team/a:push',
      access_type: 'offline',
    });
    assert.equal(t.status, 200);
    assert.equal(t.body.scope, 'repository:secret/x:pull repository:team/a:push');
    assert.ok(t.body.refresh_token);
    assert.ok(t.body.expires_in >= 60);
    const refreshed = await postToken(h, { grant_type: 'refresh_token', refresh_token: t.body.refresh_token, scope: 'repository:secret/y:delete' });
    assert.equal(refreshed.status, 200);
    assert.equal(refreshed.body.scope, 'repository:secret/y:delete');
    assert.equal((await check(h, [{ type: 'repository', name: 'secret/y', actions: ['delete'] }], refreshed.body.access_token)).status, 200);
  });

  it('GET offline_token=true returns a refresh token usable with POST', async () => {
    const t = await getToken(h, [], basic('carol', PASSWORDS.carol), { offline_token: 'true', client_id: 'docker' });
    assert.ok(t.body.refresh_token);
    const r = await postToken(h, { grant_type: 'refresh_token', refresh_token: t.body.refresh_token, scope: 'repository:carol/app:pull,push' });
    assert.equal(r.status, 200);
    assert.equal(r.body.scope, 'repository:carol/app:pull,push');
  });

  it('anonymous pull works where granted, and only there', async () => {
    const t = await getToken(h, ['repository:public/base:pull,push', 'repository:team/a:pull']);
    assert.equal(t.status, 200);
    assert.equal(decodePart(t.body.token, 1).sub, '');
    assert.deepEqual(decodePart(t.body.token, 1).access, [{ type: 'repository', name: 'public/base', actions: ['pull'] }]);
    const r = await check(h, [pull('public/base')], t.body.token);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { subject: '', kind: 'anonymous' });
    assert.equal((await check(h, [pull('team/a')], t.body.token)).status, 401);
    const offline = await getToken(h, [], undefined, { offline_token: 'true' });
    assert.equal(offline.body.refresh_token, undefined, 'no refresh token for anonymous');
  });

  it('wrong credentials and wrong requests are refused', async () => {
    h.failures.length = 0;
    const bad = await getToken(h, [], basic('alice', 'wrong'));
    assert.equal(bad.status, 401);
    assert.deepEqual(h.failures, [{ actor: 'alice', reason: 'bad_credentials' }]);
    assert.ok(!JSON.stringify(bad.body).includes('wrong'));
    const unknown = await getToken(h, [], basic('nobody', 'wrong'));
    assert.equal(unknown.status, 401);
    assert.equal((await getToken(h, [], undefined, { service: 'elsewhere' })).status, 400);
    assert.equal((await postToken(h, { grant_type: 'password', username: 'alice', password: 'nope' })).body.error, 'invalid_grant');
    assert.equal((await postToken(h, { grant_type: 'authorization_code' })).body.error, 'unsupported_grant_type');
    assert.equal((await postToken(h, { grant_type: 'refresh_token', refresh_token: 'garbage' })).status, 400);
    assert.deepEqual(
      h.failures.map((f) => f.reason),
      ['bad_credentials', 'bad_credentials', 'bad_credentials', 'invalid_refresh_token'],
    );
    h.failures.length = 0;
    assert.equal((await check(h, [pull('team/a')], 'garbage')).status, 401);
    assert.deepEqual(h.failures, [{ actor: '', reason: 'invalid_token' }]);
    assert.equal((await check(h, [pull('team/a')])).status, 401);
    assert.equal(h.failures.length, 1, 'a missing token is the normal challenge, not a failure');
  });

  it('scopes with a host:port name and malformed scopes are handled', async () => {
    const t = await getToken(
      h,
      ['repository:localhost:5000/public/x:pull', 'repository:public/ok:pull', 'bogus', 'repository::pull', 'repository:public/y:'],
      basic('alice', PASSWORDS.alice),
    );
    assert.equal(t.status, 200);
    assert.deepEqual(decodePart(t.body.token, 1).access, [{ type: 'repository', name: 'public/ok', actions: ['pull'] }]);
  });

  it('robot accounts log in with their secret and stay within their repositories', async () => {
    const file = join(h.dir, 'auth', 'robots.json');
    const { secret } = await createRobot(file, { name: 'ci', repositories: ['team/app', 'builds/**'], actions: ['pull', 'push'] });
    const t = await getToken(
      h,
      ['repository:builds/x/y:pull,push,delete', 'repository:team/other:pull', 'repository:team/app:push'],
      basic('robot+ci', secret),
      { offline_token: 'true' },
    );
    assert.equal(t.status, 200);
    assert.equal(decodePart(t.body.token, 1).sub, 'robot+ci');
    assert.deepEqual(decodePart(t.body.token, 1).access, [
      { type: 'repository', name: 'builds/x/y', actions: ['pull', 'push'] },
      { type: 'repository', name: 'team/app', actions: ['push'] },
    ]);
    const r = await check(h, [push('builds/x/y')], t.body.token);
    assert.deepEqual(r.body, { subject: 'robot+ci', kind: 'robot' });
    assert.equal((await getToken(h, [], basic('robot+ci', `${secret}x`))).status, 401);
    assert.equal((await getToken(h, [], basic('robot+nope', secret))).status, 401);
    assert.equal(await allows(h, pull('builds/z'), t.body.token), true);
    // Re-creating the robot voids the old secret and its refresh tokens.
    const again = await createRobot(file, { name: 'ci', repositories: ['builds/**'], actions: ['pull'] });
    assert.equal((await getToken(h, [], basic('robot+ci', secret))).status, 401);
    assert.equal((await postToken(h, { grant_type: 'refresh_token', refresh_token: t.body.refresh_token as string })).status, 400);
    assert.equal((await getToken(h, [], basic('robot+ci', again.secret))).status, 200);
    const expired = await createRobot(file, { name: 'old', repositories: ['**'], actions: ['pull'], expiresAt: new Date(Date.now() - 1000) });
    assert.equal((await getToken(h, [], basic('robot+old', expired.secret))).status, 401);
  });

  it('serves the JWKS with the signing key', async () => {
    const res = await fetch(`${h.url}/auth/jwks.json`);
    const body = (await res.json()) as { keys: Array<Record<string, unknown>> };
    assert.equal(body.keys.length, 1);
    assert.equal(body.keys[0]?.alg, 'ES256');
    assert.equal(body.keys[0]?.d, undefined, 'no private part');
  });
});

describe('auth: failed logins are rate limited', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ ...baseConfig, loginLimits: { perUser: 3, perAddress: 6, windowSeconds: 60 } }, addUsers);
  });
  after(() => h.close());

  it('per user, with Retry-After, lifting after the window', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await getToken(h, [], basic('alice', 'wrong'))).status, 401);
    const limited = await getToken(h, [], basic('alice', PASSWORDS.alice));
    assert.equal(limited.status, 429, 'even the right password waits');
    assert.equal((limited.body as unknown as { errors: Array<{ code: string }> }).errors[0]?.code, 'TOOMANYREQUESTS');
    const retry = Number(limited.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
    const post = await postToken(h, { grant_type: 'password', username: 'alice', password: PASSWORDS.alice });
    assert.equal(post.status, 429);
    assert.equal((await getToken(h, [], basic('bob', PASSWORDS.bob))).status, 200, 'other users are not affected');
    h.clock.now += 61_000;
    assert.equal((await getToken(h, [], basic('alice', PASSWORDS.alice))).status, 200);
  });

  it('per client address across user names', async () => {
    h.clock.now += 61_000;
    for (let i = 0; i < 6; i++) assert.equal((await getToken(h, [], basic(`guess${i}`, 'wrong'))).status, 401);
    assert.equal((await getToken(h, [], basic('carol', PASSWORDS.carol))).status, 429);
    h.clock.now += 61_000;
    assert.equal((await getToken(h, [], basic('carol', PASSWORDS.carol))).status, 200);
  });
});

describe('auth: rules file reloads without a restart', () => {
  let h: Harness;
  const rulesPath = (dir: string) => join(dir, 'rules.yaml');
  before(async () => {
    h = await startHarness(
      (dir) => ({ rulesFile: rulesPath(dir), groups: { ops: ['bob'] } }),
      async (dir) => {
        await addUsers(dir);
        await writeFile(rulesPath(dir), 'rules:\n  - repository: "apps/*"\n    users: [alice]\n    allow: [pull]\n');
      },
    );
  });
  after(() => h.close());

  const granted = async (user: 'alice' | 'bob', scope: string) => decodePart((await getToken(h, [scope], basic(user, PASSWORDS[user]))).body.token, 1).access;

  it('applies edits at once, and keeps the last good rules when the file turns invalid', async () => {
    assert.deepEqual(await granted('alice', 'repository:apps/web:pull,push'), [{ type: 'repository', name: 'apps/web', actions: ['pull'] }]);
    assert.deepEqual(await granted('alice', 'repository:apps/web/deep:pull'), [], '* stays within one segment');
    assert.deepEqual(await granted('bob', 'repository:apps/web:pull'), []);
    await writeFile(
      rulesPath(h.dir),
      [
        'groups:',
        '  ops: [alice]',
        'rules:',
        '  - repository: ["apps/**"]',
        '    groups: [ops]',
        '    allow: ["*"]',
        '  - repository: "apps/prod/**"',
        '    users: [alice]',
        '    deny: [delete, push]',
        '',
      ].join('\n'),
    );
    assert.deepEqual(await granted('alice', 'repository:apps/web/deep:pull,push,delete'), [
      { type: 'repository', name: 'apps/web/deep', actions: ['pull', 'push', 'delete'] },
    ]);
    assert.deepEqual(
      await granted('alice', 'repository:apps/prod/db:pull,push,delete'),
      [{ type: 'repository', name: 'apps/prod/db', actions: ['pull'] }],
      'deny wins',
    );
    assert.deepEqual(
      await granted('bob', 'repository:apps/x:pull'),
      [{ type: 'repository', name: 'apps/x', actions: ['pull'] }],
      'config and file groups merge',
    );
    await writeFile(rulesPath(h.dir), 'rules:\n  - repository: "apps/*"\n    bogus: true\n');
    assert.deepEqual(
      await granted('alice', 'repository:apps/web:push'),
      [{ type: 'repository', name: 'apps/web', actions: ['push'] }],
      'invalid file: previous rules stay',
    );
  });
});
