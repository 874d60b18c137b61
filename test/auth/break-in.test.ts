import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type CryptoKey, SignJWT, exportJWK, exportSPKI, generateKeyPair, importJWK, type JWK } from 'jose';
import { UserStore, removeUser, setUserPassword } from '../../auth/users.js';
import { join } from 'node:path';
import { type Harness, allows, basic, check, getToken, postToken, pull, push, startHarness } from './harness.js';
import { PASSWORDS, addUsers, baseConfig, decodePart, stealSigningKey } from './fixtures.js';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('auth: attempts to break in are refused', () => {
  let h: Harness;
  let kid: string;
  let aliceTeamA: string;

  before(async () => {
    h = await startHarness(baseConfig, addUsers);
    const t = await getToken(h, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
    assert.equal(t.status, 200);
    aliceTeamA = t.body.token;
    kid = decodePart(aliceTeamA, 0).kid as string;
  });
  after(() => h.close());

  function claims(extra: Record<string, unknown> = {}) {
    const now = Math.floor(h.clock.now / 1000);
    return {
      iss: 'berth',
      sub: 'alice',
      aud: 'berth',
      iat: now,
      nbf: now,
      exp: now + 60,
      access: [{ type: 'repository', name: 'team/a', actions: ['pull', 'push', 'delete'] }],
      ...extra,
    };
  }

  async function assertInvalid(token: string) {
    const r = await check(h, [pull('team/a')], token);
    assert.equal(r.status, 401);
    assert.equal(r.body.errors?.[0]?.code, 'UNAUTHORIZED');
    assert.match(r.challenge ?? '', /error="invalid_token"/);
  }

  it('the genuine token works (control)', async () => {
    const r = await check(h, [pull('team/a')], aliceTeamA);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { subject: 'alice', kind: 'user' });
  });

  it('refuses alg none', async () => {
    await assertInvalid(`${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(claims())}.`);
    await assertInvalid(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}`);
  });

  it('refuses an HS256 token signed with the public key', async () => {
    const jwks = (await (await fetch(`${h.url}/auth/jwks.json`)).json()) as { keys: JWK[] };
    const jwk = jwks.keys.find((k) => k.kid === kid);
    assert.ok(jwk);
    const pem = await exportSPKI((await importJWK(jwk, 'ES256', { extractable: true })) as CryptoKey);
    for (const secret of [pem, JSON.stringify(jwk)]) {
      const input = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${b64(claims())}`;
      const sig = createHmac('sha256', secret).update(input).digest('base64url');
      await assertInvalid(`${input}.${sig}`);
    }
  });

  it('refuses an unknown kid and a known kid with a foreign signature', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    await assertInvalid(await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: 'no-such-key' }).sign(privateKey));
    await assertInvalid(await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid }).sign(privateKey));
    await assertInvalid(await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256' }).sign(privateKey));
  });

  it('ignores keys the token brings along (jwk, jku, x5u headers)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(publicKey);
    await assertInvalid(await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', jwk }).sign(privateKey));
    await assertInvalid(await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid, jwk }).sign(privateKey));
    await assertInvalid(
      await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid, jku: 'http://127.0.0.1:1/jwks', x5u: 'http://127.0.0.1:1/x5u' }).sign(privateKey),
    );
  });

  it('refuses expired and not-yet-valid tokens, even signed with the real key', async () => {
    const real = await stealSigningKey(h.dir);
    const now = Math.floor(h.clock.now / 1000);
    const sign = (c: Record<string, unknown>) => new SignJWT(c).setProtectedHeader({ alg: 'ES256', kid: real.kid }).sign(real.key);
    assert.equal((await check(h, [pull('team/a')], await sign(claims()))).status, 200, 'control: a well-formed forged-by-owner token passes');
    await assertInvalid(await sign(claims({ iat: now - 600, nbf: now - 600, exp: now - 60 })));
    await assertInvalid(await sign(claims({ nbf: now + 600, exp: now + 900 })));
    await assertInvalid(await sign(claims({ exp: undefined })));
  });

  it('refuses a token issued in the future, signed with the real key, and says why', async () => {
    const real = await stealSigningKey(h.dir);
    const now = Math.floor(h.clock.now / 1000);
    const sign = (c: Record<string, unknown>, typ = 'JWT') => new SignJWT(c).setProtectedHeader({ alg: 'ES256', kid: real.kid, typ }).sign(real.key);
    for (const forged of [claims({ iat: now + 3600, nbf: undefined, exp: now + 3660 }), claims({ iat: now + 3600, exp: now + 3660 })]) {
      const r = await check(h, [pull('team/a')], await sign(forged));
      assert.equal(r.status, 401);
      assert.match(r.challenge ?? '', /error="invalid_token"/);
      assert.match(JSON.stringify(r.body), /issued in the future \(iat is 3600 s ahead, beyond the 5 s clock tolerance\)/);
    }
    assert.equal((await check(h, [pull('team/a')], await sign(claims({ iat: now + 4, nbf: undefined })))).status, 200, 'within the clock tolerance');
    const early = await check(h, [pull('team/a')], await sign(claims({ nbf: now + 600, exp: now + 900 })));
    assert.equal(early.status, 401, 'nbf is enforced');
    assert.match(JSON.stringify(early.body), /not valid yet/);
    const bnd = await new UserStore(join(h.dir, 'auth', 'htpasswd')).fingerprint('alice');
    const refresh = (iat: number) => sign({ iss: 'berth', sub: 'alice', aud: 'berth-refresh:berth', bnd, iat, exp: now + 7200 }, 'berth-refresh+jwt');
    assert.equal(
      (await postToken(h, { grant_type: 'refresh_token', refresh_token: await refresh(now) })).status,
      200,
      'control: a current refresh token works',
    );
    assert.equal(
      (await postToken(h, { grant_type: 'refresh_token', refresh_token: await refresh(now + 3600) })).status,
      400,
      'a refresh token from the future is refused too',
    );
  });

  it('refuses an issued token once it has expired', async () => {
    const t = await getToken(h, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
    const saved = h.clock.now;
    try {
      h.clock.now += (t.body.expires_in + 6) * 1000;
      await assertInvalid(t.body.token);
      h.clock.now = saved - 3600_000;
      await assertInvalid(t.body.token);
    } finally {
      h.clock.now = saved;
    }
  });

  it('refuses a wrong audience and a wrong issuer', async () => {
    const real = await stealSigningKey(h.dir);
    const sign = (c: Record<string, unknown>) => new SignJWT(c).setProtectedHeader({ alg: 'ES256', kid: real.kid }).sign(real.key);
    await assertInvalid(await sign(claims({ aud: 'other-registry' })));
    await assertInvalid(await sign(claims({ iss: 'evil' })));
    await assertInvalid(await sign(claims({ aud: undefined })));
  });

  it('refuses a tampered payload', async () => {
    const [header, , sig] = aliceTeamA.split('.');
    const payload = decodePart(aliceTeamA, 1);
    payload.access = [{ type: 'repository', name: 'secret/x', actions: ['*'] }];
    await assertInvalid(`${header}.${b64(payload)}.${sig}`);
    payload.access = [{ type: 'repository', name: 'team/a', actions: ['pull'] }];
    payload.sub = 'bob';
    await assertInvalid(`${header}.${b64(payload)}.${sig}`);
  });

  it('refuses garbage and non-bearer credentials', async () => {
    await assertInvalid('not.a.token');
    await assertInvalid('x');
    const r = await check(h, [pull('team/a')], undefined, 'Digest abc');
    assert.equal(r.status, 401);
    const basicOnV2 = await check(h, [pull('team/a')], undefined, basic('alice', PASSWORDS.alice));
    assert.equal(basicOnV2.status, 401, 'Basic credentials are not accepted on registry routes');
    assert.match(basicOnV2.challenge ?? '', /^Bearer /);
  });

  it('refuses a token for repository A on repository B', async () => {
    const r = await check(h, [pull('team/b')], aliceTeamA);
    assert.equal(r.status, 401, 'alice could get team/b, so the client is told to fetch a new token');
    assert.match(r.challenge ?? '', /error="insufficient_scope"/);
    assert.match(r.challenge ?? '', /scope="repository:team\/b:pull"/);
    const denied = await check(h, [pull('secret/x')], aliceTeamA);
    assert.equal(denied.status, 403, 'alice can never pull secret/x');
    assert.equal(denied.body.errors?.[0]?.code, 'DENIED');
    assert.deepEqual(denied.body.errors?.[0]?.detail, [{ Type: 'repository', Name: 'secret/x', Action: 'pull' }]);
  });

  it('refuses a push with a pull-only token', async () => {
    const r = await check(h, [push('team/a')], aliceTeamA);
    assert.equal(r.status, 401);
    assert.match(r.challenge ?? '', /error="insufficient_scope"/);
    const locked = await getToken(h, ['repository:team/locked:pull,push'], basic('alice', PASSWORDS.alice));
    assert.deepEqual(decodePart(locked.body.token, 1).access, [{ type: 'repository', name: 'team/locked', actions: ['pull'] }]);
    const denied = await check(h, [push('team/locked')], locked.body.token);
    assert.equal(denied.status, 403);
    const anon = await getToken(h, ['repository:public/x:pull,push']);
    const anonPush = await check(h, [push('public/x')], anon.body.token);
    assert.equal(anonPush.status, 401, 'anonymous callers are challenged (they may log in), never told DENIED');
    assert.match(anonPush.challenge ?? '', /error="insufficient_scope"/);
  });

  it('refuses a mount without pull on the source', async () => {
    const t = await getToken(h, ['repository:alice/app:pull,push', 'repository:secret/x:pull'], basic('alice', PASSWORDS.alice));
    assert.deepEqual(decodePart(t.body.token, 1).access, [{ type: 'repository', name: 'alice/app', actions: ['pull', 'push'] }]);
    const r = await check(h, [pull('secret/x'), push('alice/app')], t.body.token);
    assert.equal(r.status, 403);
    assert.deepEqual(r.body.errors?.[0]?.detail, [{ Type: 'repository', Name: 'secret/x', Action: 'pull' }]);
    const bob = await getToken(h, ['repository:bob/app:pull,push', 'repository:secret/x:pull'], basic('bob', PASSWORDS.bob));
    assert.equal((await check(h, [pull('secret/x'), push('bob/app')], bob.body.token)).status, 200, 'control: bob may mount from secret/x');
  });

  it('automatic mount only sees repositories the caller may pull', async () => {
    const t = await getToken(h, ['repository:alice/app:pull,push'], basic('alice', PASSWORDS.alice));
    assert.equal(await allows(h, pull('secret/x'), t.body.token), false);
    assert.equal(await allows(h, pull('team/other'), t.body.token), true, 'live rules: alice may pull team/*');
    assert.equal(await allows(h, pull('alice/app'), t.body.token), true);
    assert.equal(await allows(h, pull('public/base'), undefined), true);
    assert.equal(await allows(h, pull('team/other'), undefined), false);
    assert.equal(await allows(h, pull('team/other'), 'garbage'), false);
  });

  it('refuses refresh tokens used as access tokens and the reverse', async () => {
    const t = await getToken(h, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice), { offline_token: 'true', client_id: 'test' });
    assert.ok(t.body.refresh_token);
    await assertInvalid(t.body.refresh_token);
    const r = await postToken(h, { grant_type: 'refresh_token', refresh_token: t.body.token, scope: 'repository:team/a:pull' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'invalid_grant');
  });

  it('refuses refresh tokens once the user is removed or changes password', async () => {
    const file = join(h.dir, 'auth', 'htpasswd');
    await setUserPassword(file, 'dave', 'dave-secret-pw', 4);
    const t = await getToken(h, [], basic('dave', 'dave-secret-pw'), { offline_token: 'true', client_id: 'test' });
    const rt = t.body.refresh_token as string;
    assert.equal((await postToken(h, { grant_type: 'refresh_token', refresh_token: rt, scope: 'repository:dave/x:push' })).status, 200);
    await setUserPassword(file, 'dave', 'dave-new-password', 4);
    assert.equal((await postToken(h, { grant_type: 'refresh_token', refresh_token: rt })).status, 400, 'password changed');
    const t2 = await postToken(h, { grant_type: 'password', username: 'dave', password: 'dave-new-password', access_type: 'offline' });
    const rt2 = t2.body.refresh_token as string;
    assert.equal((await postToken(h, { grant_type: 'refresh_token', refresh_token: rt2 })).status, 200);
    await removeUser(file, 'dave');
    const gone = await postToken(h, { grant_type: 'refresh_token', refresh_token: rt2 });
    assert.equal(gone.status, 400);
    assert.equal(gone.body.error, 'invalid_grant');
    assert.equal((await getToken(h, [], basic('dave', 'dave-new-password'))).status, 401);
  });
});

describe('auth: key rotation', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ ...baseConfig, refreshTokenTtlSeconds: 600 }, addUsers);
  });
  after(() => h.close());

  it('keeps verifying the previous key until its tokens expire, then refuses it', async () => {
    const old = await stealSigningKey(h.dir);
    const before = await getToken(h, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
    assert.equal(decodePart(before.body.token, 0).kid, old.kid);
    const now = Math.floor(h.clock.now / 1000);
    // A long-lived token with the old key (as if the key had leaked) must die with the key's retention.
    const longLived = await new SignJWT({ access: [{ type: 'repository', name: 'team/a', actions: ['pull'] }] })
      .setProtectedHeader({ alg: 'ES256', kid: old.kid })
      .setIssuer('berth')
      .setAudience('berth')
      .setSubject('alice')
      .setIssuedAt(now)
      .setExpirationTime(now + 86_400)
      .sign(old.key);

    const newKid = await h.auth.rotateKey();
    assert.notEqual(newKid, old.kid);
    const after = await getToken(h, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
    assert.equal(decodePart(after.body.token, 0).kid, newKid);
    assert.equal((await check(h, [pull('team/a')], before.body.token)).status, 200, 'old token still valid right after rotation');
    assert.equal((await check(h, [pull('team/a')], longLived)).status, 200);
    const jwks = (await (await fetch(`${h.url}/auth/jwks.json`)).json()) as { keys: JWK[] };
    assert.deepEqual(jwks.keys.map((k) => k.kid).sort(), [old.kid, newKid].sort());

    h.clock.now += (120 + 5 + 1) * 1000;
    const r = await check(h, [pull('team/a')], longLived);
    assert.equal(r.status, 401, 'the retired key no longer verifies access tokens');
    assert.match(r.challenge ?? '', /invalid_token/);
    assert.equal((await check(h, [pull('team/a')], after.body.token)).status, 401, 'the new token has expired too by now');
    const fresh = await getToken(h, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
    assert.equal((await check(h, [pull('team/a')], fresh.body.token)).status, 200);
  });
});
