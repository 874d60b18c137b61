import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, describe, it } from 'node:test';
import { UpstreamDeniedError, UpstreamInvalidError, UpstreamUnavailableError } from '../../server/registry/proxy/errors.js';
import { MAX_MANIFEST_BYTES, type Upstream } from '../../server/registry/proxy/upstream.js';
import { freePort } from '../helpers/berth-process.js';
import { OCI_MANIFEST, sha256 } from '../helpers/oci.js';
import { collect, json, makeUpstream, startFakeServer, type FakeServer } from './helpers.js';

/**
 * The upstream client against small real HTTP servers that misbehave on purpose: token caching and
 * expiry, redirects to other origins, fail-over, throttling, wrong digests and oversized manifests.
 */

const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] }));
const MANIFEST_DIGEST = sha256(MANIFEST);

function sendManifest(res: http.ServerResponse, body: Buffer = MANIFEST, extra: Record<string, string> = {}): void {
  res.writeHead(200, { 'Content-Type': OCI_MANIFEST, 'Content-Length': body.length, 'Docker-Content-Digest': sha256(body), ...extra });
  res.end(body);
}

describe('proxy upstream: edge cases against local servers', () => {
  const servers: FakeServer[] = [];
  const upstreams: Upstream[] = [];
  const serve = async (handler: Parameters<typeof startFakeServer>[0]) => {
    const server = await startFakeServer(handler);
    servers.push(server);
    return server;
  };
  const upstreamOf = (...args: Parameters<typeof makeUpstream>) => {
    const made = makeUpstream(...args);
    upstreams.push(made.upstream);
    return made;
  };
  after(async () => {
    for (const u of upstreams) u.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  /** A registry whose token service issues numbered tokens per scope and accepts only live ones. */
  async function tokenRegistry(): Promise<{ server: FakeServer; issued: Map<string, number>; live: Set<string> }> {
    const issued = new Map<string, number>();
    const live = new Set<string>();
    const server = await serve((req, res, self) => {
      const url = new URL(req.url ?? '/', self.url);
      if (url.pathname === '/token') {
        const scope = url.searchParams.get('scope') ?? '';
        const n = (issued.get(scope) ?? 0) + 1;
        issued.set(scope, n);
        const token = `${scope}#${n}`;
        live.add(token);
        json(res, 200, { token, expires_in: 60 });
        return;
      }
      const repo = /^\/v2\/(.+)\/manifests\//.exec(url.pathname)?.[1] ?? '';
      const token = req.headers.authorization?.replace(/^Bearer /, '') ?? '';
      if (!live.has(token) || !token.startsWith(`repository:${repo}:pull#`)) {
        json(
          res,
          401,
          { errors: [{ code: 'UNAUTHORIZED' }] },
          {
            'WWW-Authenticate': `Bearer realm="${self.url}/token",service="fake",scope="repository:${repo}:pull"`,
          },
        );
        return;
      }
      sendManifest(res);
    });
    return { server, issued, live };
  }

  it('fetches one token per scope for concurrent requests and reuses it until shortly before it expires', async () => {
    const { server, issued } = await tokenRegistry();
    const clock = { now: 1_000_000 };
    const { upstream, events } = upstreamOf({ urls: [server.url], username: 'robot', passwordEnv: 'PW' }, { env: { PW: 'hunter2' }, now: () => clock.now });
    const heads = await Promise.all(Array.from({ length: 10 }, () => upstream.headManifest('team/a', 'v1', [OCI_MANIFEST])));
    for (const head of heads) assert.equal(head?.digest, MANIFEST_DIGEST);
    assert.equal(issued.get('repository:team/a:pull'), 1);
    const tokenRequests = server.requests.filter((r) => r.url.startsWith('/token'));
    assert.equal(tokenRequests[0]?.headers.authorization, `Basic ${Buffer.from('robot:hunter2').toString('base64')}`);
    assert.ok(tokenRequests[0]?.url.includes('service=fake'), 'the service of the challenge is sent back');
    assert.equal(events.filter((e) => e.kind === 'token').length, 1);

    await upstream.headManifest('team/b', 'v1', [OCI_MANIFEST]);
    assert.equal(issued.get('repository:team/b:pull'), 1, 'another scope, another token');

    // expires_in 60: reused for 48 s (a fifth kept as margin), then fetched again.
    clock.now += 47_000;
    const before = server.requests.length;
    await upstream.headManifest('team/a', 'v1', [OCI_MANIFEST]);
    assert.equal(issued.get('repository:team/a:pull'), 1);
    assert.equal(server.requests.length, before + 1, 'the cached token went with the first request: no 401 round trip');
    clock.now += 2_000;
    await upstream.headManifest('team/a', 'v1', [OCI_MANIFEST]);
    assert.equal(issued.get('repository:team/a:pull'), 2);
  });

  it('fetches a new token when the upstream refuses the cached one, then gives up after one retry', async () => {
    const { server, issued, live } = await tokenRegistry();
    const { upstream } = upstreamOf({ urls: [server.url] });
    await upstream.headManifest('team/a', 'v1', [OCI_MANIFEST]);
    live.clear(); // the upstream revoked every token it gave
    assert.equal((await upstream.headManifest('team/a', 'v1', [OCI_MANIFEST]))?.digest, MANIFEST_DIGEST);
    assert.equal(issued.get('repository:team/a:pull'), 2);

    const tokenServer = await serve((_req, res) => json(res, 200, { access_token: 'useless' }));
    const stubborn = await serve((_req, res) => {
      json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'WWW-Authenticate': `Bearer realm="${tokenServer.url}/token",service="s"` });
    });
    const { upstream: refused } = upstreamOf({ urls: [stubborn.url] });
    await assert.rejects(refused.getManifest('x/y', 'v1', [OCI_MANIFEST]), UpstreamDeniedError);
    assert.equal(stubborn.requests.length, 2, 'the request, and one retry with a fresh token');
    assert.equal(tokenServer.requests.length, 1);
  });

  it('answers Basic challenges with the configured credentials', async () => {
    const expected = `Basic ${Buffer.from('u:p').toString('base64')}`;
    const server = await serve((req, res) => {
      if (req.headers.authorization !== expected) return json(res, 401, {}, { 'WWW-Authenticate': 'Basic realm="registry"' });
      sendManifest(res);
    });
    const { upstream } = upstreamOf({ urls: [server.url], username: 'u', passwordEnv: 'PW' }, { env: { PW: 'p' } });
    assert.equal((await upstream.getManifest('a/b', 'v1', [OCI_MANIFEST])).digest, MANIFEST_DIGEST);
    assert.equal((await upstream.getManifest('a/b', 'v1', [OCI_MANIFEST])).digest, MANIFEST_DIGEST);
    assert.equal(server.requests.length, 3, 'one 401, then credentials sent at once');
    const { upstream: anonymous } = upstreamOf({ urls: [server.url] });
    await assert.rejects(anonymous.getManifest('a/b', 'v1', [OCI_MANIFEST]), UpstreamDeniedError);
    const { upstream: wrong } = upstreamOf({ urls: [server.url], username: 'u', passwordEnv: 'PW' }, { env: { PW: 'wrong' } });
    await assert.rejects(wrong.getManifest('a/b', 'v1', [OCI_MANIFEST]), UpstreamDeniedError);
    const before = server.requests.length;
    await assert.rejects(wrong.getManifest('a/b', 'v1', [OCI_MANIFEST]), UpstreamDeniedError);
    assert.equal(server.requests.length, before + 1, 'refused Basic credentials are not sent twice in a row');
  });

  it('follows blob redirects and drops Authorization when they leave the upstream origin', async () => {
    const body = Buffer.from('layer bytes from the CDN');
    const cdn = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' });
      res.end(body);
    });
    const expected = `Basic ${Buffer.from('u:p').toString('base64')}`;
    const registry = await serve((req, res) => {
      if (req.headers.authorization !== expected) return json(res, 401, {}, { 'WWW-Authenticate': 'Basic realm="registry"' });
      if (req.url?.startsWith('/v2/')) {
        res.writeHead(307, { Location: '/storage/blob', 'Content-Length': 0 });
        return res.end();
      }
      res.writeHead(302, { Location: `${cdn.url}/signed?x=1`, 'Content-Length': 0 });
      res.end();
    });
    const { upstream } = upstreamOf({ urls: [registry.url], username: 'u', passwordEnv: 'PW' }, { env: { PW: 'p' } });
    const blob = await upstream.openBlob('a/b', sha256(body));
    assert.equal(blob.size, body.length);
    assert.deepEqual(await collect(blob.stream), body);
    assert.equal(registry.requests.at(-1)?.url, '/storage/blob');
    assert.equal(registry.requests.at(-1)?.headers.authorization, expected, 'same origin: credentials kept');
    assert.equal(cdn.requests.length, 1);
    assert.equal(cdn.requests[0]?.url, '/signed?x=1');
    assert.equal(cdn.requests[0]?.headers.authorization, undefined, 'another origin: credentials dropped');

    const loop = await serve((_req, res) => {
      res.writeHead(302, { Location: '/again', 'Content-Length': 0 });
      res.end();
    });
    const { upstream: looping } = upstreamOf({ urls: [loop.url] });
    await assert.rejects(looping.openBlob('a/b', sha256(body)), (err: unknown) => err instanceof UpstreamInvalidError && /more than 5 times/.test(err.message));
    assert.equal(loop.requests.length, 6);
  });

  it('fails over from a 503 and from a closed port to the next URL; the last error wins', async () => {
    const down = await serve((_req, res) => json(res, 503, { errors: [{ code: 'UNAVAILABLE' }] }));
    const good = await serve((_req, res) => sendManifest(res));
    const closed = `http://127.0.0.1:${await freePort()}`;
    const { upstream, events } = upstreamOf({ urls: [down.url, closed, good.url] });
    assert.equal((await upstream.getManifest('a/b', 'v1', [OCI_MANIFEST])).digest, MANIFEST_DIGEST);
    assert.equal(down.requests.length, 1);
    assert.equal(good.requests.length, 1);
    assert.equal(events.filter((e) => e.kind === 'failover').length, 2);

    const throttled = await serve((_req, res) => json(res, 429, { errors: [{ code: 'TOOMANYREQUESTS' }] }, { 'Retry-After': '7' }));
    const { upstream: allDown } = upstreamOf({ urls: [down.url, throttled.url] });
    await assert.rejects(allDown.getManifest('a/b', 'v1', [OCI_MANIFEST]), (err: unknown) => {
      assert.ok(err instanceof UpstreamUnavailableError, String(err));
      assert.equal(err.reason, 'throttled');
      assert.equal(err.retryAfter, 7);
      assert.equal(err.status, 429);
      return true;
    });
    // A 404 is an answer, not an outage: the next URL is not asked.
    const missing = await serve((_req, res) => json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN' }] }));
    const before = good.requests.length;
    const { upstream: notThere } = upstreamOf({ urls: [missing.url, good.url] });
    assert.equal(await notThere.headManifest('a/b', 'v1', [OCI_MANIFEST]), undefined);
    assert.equal(good.requests.length, before);
  });

  it('times out an upstream that sends no headers, and one whose body stalls', async () => {
    const silent = await serve(() => {
      // never answers
    });
    const { upstream } = upstreamOf({ urls: [silent.url], timeoutSeconds: 0.2 });
    await assert.rejects(
      upstream.getManifest('a/b', 'v1', [OCI_MANIFEST]),
      (err: unknown) => err instanceof UpstreamUnavailableError && err.reason === 'timeout',
    );

    const stalling = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': 1000 });
      res.write(Buffer.alloc(10));
    });
    const { upstream: slow } = upstreamOf({ urls: [stalling.url], timeoutSeconds: 0.2 });
    const blob = await slow.openBlob('a/b', sha256('x'));
    const started = Date.now();
    await assert.rejects(collect(blob.stream), /sent nothing for 200 ms/);
    assert.ok(Date.now() - started < 5000, 'cut after timeoutSeconds of silence, not later');
  });

  it('reports an unreachable token endpoint as unavailable (token-endpoint)', async () => {
    const realm = `http://127.0.0.1:${await freePort()}/token`;
    const server = await serve((_req, res) => json(res, 401, {}, { 'WWW-Authenticate': `Bearer realm="${realm}",service="s"` }));
    const { upstream } = upstreamOf({ urls: [server.url] });
    await assert.rejects(upstream.headManifest('a/b', 'v1', [OCI_MANIFEST]), (err: unknown) => {
      assert.ok(err instanceof UpstreamUnavailableError, String(err));
      assert.equal(err.reason, 'token-endpoint');
      return true;
    });
  });

  it('refuses manifests whose digest is not the one asked for or claimed', async () => {
    const other = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: ['tampered'] }));
    const server = await serve((req, res) => {
      if (req.url?.endsWith('/lying-header')) return sendManifest(res, MANIFEST, { 'Docker-Content-Digest': sha256(other) });
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'Content-Type': OCI_MANIFEST, 'Content-Length': other.length, 'Docker-Content-Digest': sha256(other) });
        return res.end();
      }
      sendManifest(res, other);
    });
    const { upstream } = upstreamOf({ urls: [server.url] });
    await assert.rejects(upstream.getManifest('a/b', MANIFEST_DIGEST, [OCI_MANIFEST]), (err: unknown) => {
      assert.ok(err instanceof UpstreamInvalidError, String(err));
      assert.match(err.message, /whose digest is sha256:/);
      return true;
    });
    await assert.rejects(upstream.getManifest('a/b', 'lying-header', [OCI_MANIFEST]), /does not match its Docker-Content-Digest/);
    await assert.rejects(upstream.headManifest('a/b', MANIFEST_DIGEST, [OCI_MANIFEST]), UpstreamInvalidError);
    // By tag, whatever the upstream sends is the tag's manifest; its digest is computed here.
    assert.equal((await upstream.getManifest('a/b', 'v1', [OCI_MANIFEST])).digest, sha256(other));
  });

  it('refuses a manifest over 4 MiB, declared or streamed', async () => {
    const big = Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20);
    const server = await serve((req, res) => {
      if (req.url?.endsWith('/declared')) res.writeHead(200, { 'Content-Type': OCI_MANIFEST, 'Content-Length': big.length });
      else res.writeHead(200, { 'Content-Type': OCI_MANIFEST }); // chunked: no length up front
      res.end(big);
    });
    const { upstream } = upstreamOf({ urls: [server.url] });
    for (const tag of ['declared', 'chunked']) {
      await assert.rejects(upstream.getManifest('a/b', tag, [OCI_MANIFEST]), (err: unknown) => {
        assert.ok(err instanceof UpstreamInvalidError, `${tag}: ${String(err)}`);
        assert.match(err.message, /more than the 4194304 bytes allowed/);
        return true;
      });
    }
  });
});
