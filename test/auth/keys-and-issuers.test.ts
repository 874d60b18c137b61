import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CryptoKey, type JWK, SignJWT, calculateJwkThumbprint, exportJWK, exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { type Harness, allows, basic, check, getToken, pull, startHarness } from './harness.js';
import { PASSWORDS, addUsers, baseConfig, decodePart } from './fixtures.js';

describe('auth: signing algorithms and configured keys', () => {
  for (const algorithm of ['RS256', 'EdDSA'] as const) {
    it(`signs and verifies with ${algorithm}`, async () => {
      const h = await startHarness({ ...baseConfig, signing: { algorithm } }, addUsers);
      try {
        const t = await getToken(h, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
        assert.equal(decodePart(t.body.token, 0).alg, algorithm);
        assert.equal((await check(h, [pull('team/a')], t.body.token)).status, 200);
      } finally {
        await h.close();
      }
    });
  }

  it('uses a configured PEM key, and keeps the previous one verifying after it is replaced', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-auth-keyfile-'));
    try {
      const keyFile = join(dir, 'signing.pem');
      const first = await generateKeyPair('ES256', { extractable: true });
      await writeFile(keyFile, await exportPKCS8(first.privateKey), { mode: 0o600 });
      const config = { ...baseConfig, signing: { keyFile } };
      const h1 = await startHarness(config, addUsers, { dir });
      const t1 = await getToken(h1, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
      assert.equal(decodePart(t1.body.token, 0).kid, await calculateJwkThumbprint(await exportJWK(first.publicKey)));
      await h1.close();

      const second = await generateKeyPair('ES256', { extractable: true });
      await writeFile(keyFile, await exportPKCS8(second.privateKey), { mode: 0o600 });
      const h2 = await startHarness(config, undefined, { dir });
      try {
        const t2 = await getToken(h2, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
        assert.equal(decodePart(t2.body.token, 0).kid, await calculateJwkThumbprint(await exportJWK(second.publicKey)));
        assert.equal((await check(h2, [pull('team/a')], t1.body.token)).status, 200, 'the replaced key still verifies');
        assert.equal((await check(h2, [pull('team/a')], t2.body.token)).status, 200);
      } finally {
        await h2.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("processes sharing a dataDir agree on one key and follow each other's rotation", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-auth-shared-'));
    try {
      await addUsers(dir);
      const [a, b] = await Promise.all([startHarness(baseConfig, undefined, { dir }), startHarness(baseConfig, undefined, { dir })]);
      try {
        const ta = await getToken(a, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
        const tb = await getToken(b, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
        assert.equal(decodePart(ta.body.token, 0).kid, decodePart(tb.body.token, 0).kid);
        assert.equal((await check(b, [pull('team/a')], ta.body.token)).status, 200);
        const kid = await a.auth.rotateKey();
        const tb2 = await getToken(b, ['repository:team/a:pull'], basic('alice', PASSWORDS.alice));
        assert.equal(decodePart(tb2.body.token, 0).kid, kid, 'b signs with the key a made active');
        assert.equal((await check(a, [pull('team/a')], tb2.body.token)).status, 200);
        assert.equal((await check(a, [pull('team/a')], tb.body.token)).status, 200);
      } finally {
        await a.close();
        await b.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('auth: tokens from an external issuer', () => {
  let h: Harness;
  let jwksServer: Server;
  let remoteKey: CryptoKey;
  let remoteKid: string;
  let pemKey: CryptoKey;
  const jwks: { keys: JWK[] } = { keys: [] };

  before(async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true });
    remoteKey = rsa.privateKey;
    const pub = await exportJWK(rsa.publicKey);
    remoteKid = await calculateJwkThumbprint(pub);
    jwks.keys.push({ ...pub, kid: remoteKid, alg: 'RS256', use: 'sig' });
    jwksServer = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`;
    const ec = await generateKeyPair('ES256', { extractable: true });
    pemKey = ec.privateKey;
    h = await startHarness(
      (dir) => ({
        ...baseConfig,
        externalIssuers: [
          { issuer: 'https://auth.example', jwksUrl, algorithms: ['RS256'] },
          { issuer: 'pem-issuer', publicKeyFiles: [join(dir, 'ext.pem')], algorithms: ['ES256'], audience: 'registry.example' },
        ],
      }),
      async (dir) => {
        await addUsers(dir);
        await writeFile(join(dir, 'ext.pem'), await exportSPKI(ec.publicKey));
      },
    );
  });
  after(async () => {
    await h.close();
    await new Promise((resolve) => jwksServer.close(resolve));
  });

  const sign = (key: CryptoKey, alg: string, claims: Record<string, unknown>, kid?: string) => {
    const now = Math.floor(h.clock.now / 1000);
    return new SignJWT({ access: [{ type: 'repository', name: 'team/a', actions: ['pull'] }], ...claims })
      .setProtectedHeader(kid ? { alg, kid } : { alg })
      .setSubject('ext-user')
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(key);
  };

  it('accepts a token whose key comes from the issuer JWKS, and checks its claims', async () => {
    const token = await sign(remoteKey, 'RS256', { iss: 'https://auth.example', aud: 'berth' }, remoteKid);
    const r = await check(h, [pull('team/a')], token);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { subject: 'ext-user', kind: 'user' });
    const wider = await check(h, [pull('team/b')], token);
    assert.equal(wider.status, 401, 'an external token grants only what it says');
    assert.match(wider.challenge ?? '', /insufficient_scope/);
    assert.equal(await allows(h, pull('team/b'), token), false);
    assert.equal((await check(h, [pull('team/a')], await sign(remoteKey, 'RS256', { iss: 'https://auth.example', aud: 'other' }, remoteKid))).status, 401);
    const stranger = await generateKeyPair('RS256');
    assert.equal(
      (await check(h, [pull('team/a')], await sign(stranger.privateKey, 'RS256', { iss: 'https://auth.example', aud: 'berth' }, remoteKid))).status,
      401,
    );
    assert.equal((await check(h, [pull('team/a')], await sign(remoteKey, 'RS256', { iss: 'https://unknown.example', aud: 'berth' }, remoteKid))).status, 401);
    assert.equal(
      (await check(h, [pull('team/a')], await sign(remoteKey, 'RS256', { iss: 'berth', aud: 'berth' }, remoteKid))).status,
      401,
      'cannot pose as the local issuer',
    );
  });

  it('refuses an external token issued in the future (JWKS and PEM keys)', async () => {
    const now = Math.floor(h.clock.now / 1000);
    const future = (key: CryptoKey, alg: string, iss: string, aud: string, kid?: string) =>
      new SignJWT({ access: [{ type: 'repository', name: 'team/a', actions: ['pull'] }] })
        .setProtectedHeader(kid ? { alg, kid } : { alg })
        .setSubject('ext-user')
        .setIssuer(iss)
        .setAudience(aud)
        .setIssuedAt(now + 3600)
        .setExpirationTime(now + 3900)
        .sign(key);
    for (const token of [
      await future(remoteKey, 'RS256', 'https://auth.example', 'berth', remoteKid),
      await future(pemKey, 'ES256', 'pem-issuer', 'registry.example'),
    ]) {
      const r = await check(h, [pull('team/a')], token);
      assert.equal(r.status, 401);
      assert.match(JSON.stringify(r.body), /issued in the future/);
    }
  });

  it('accepts a token whose key is a configured PEM', async () => {
    const ok = await sign(pemKey, 'ES256', { iss: 'pem-issuer', aud: 'registry.example' });
    assert.equal((await check(h, [pull('team/a')], ok)).status, 200);
    assert.equal((await check(h, [pull('team/a')], await sign(pemKey, 'ES256', { iss: 'pem-issuer', aud: 'berth' }))).status, 401, 'its own audience');
    assert.equal(
      (await check(h, [pull('team/a')], await sign(pemKey, 'ES256', { iss: 'https://auth.example', aud: 'berth' }, remoteKid))).status,
      401,
      'keys are per issuer',
    );
  });
});
