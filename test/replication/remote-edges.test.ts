import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ReplicationError } from '../../server/registry/replication/errors.js';
import type { RemoteEndpoint } from '../../server/registry/replication/remote.js';
import { OCI_MANIFEST, sha256 } from '../helpers/oci.js';
import { json, startFakeServer, type FakeServer } from '../proxy/helpers.js';
import { makeRemote, signal } from './helpers.js';

/** The remote endpoint against small real HTTP servers that answer the way some registries do. */

const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] }));
const DIGEST = sha256(MANIFEST);

describe('replication remote: edge cases against local servers', () => {
  const servers: FakeServer[] = [];
  const remotes: RemoteEndpoint[] = [];
  const remoteOn = async (handler: Parameters<typeof startFakeServer>[0]) => {
    const server = await startFakeServer(handler);
    servers.push(server);
    const { remote } = makeRemote({ urls: [server.url] });
    remotes.push(remote);
    return { server, remote };
  };
  after(async () => {
    for (const r of remotes) r.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('refuses a manifest whose bytes do not match the digest asked for, even with a matching header', async () => {
    const tampered = Buffer.from(MANIFEST.toString('utf8').replace('"layers":[]', '"layers":[] '));
    const { remote } = await remoteOn((_req, res) => {
      res.writeHead(200, { 'Content-Type': OCI_MANIFEST, 'Content-Length': tampered.length, 'Docker-Content-Digest': DIGEST });
      res.end(tampered);
    });
    const err = await remote.getManifest('a/b', DIGEST, signal()).then(
      () => assert.fail('took a tampered manifest'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ReplicationError && !err.retryable, String(err));
    assert.match(err.message, /the manifest sent has digest sha256:/);
  });

  it('says a registry without a catalog needs exact repository names', async () => {
    const { remote } = await remoteOn((_req, res) => json(res, 404, { errors: [{ code: 'UNSUPPORTED', message: 'no catalog' }] }));
    await assert.rejects(
      (async () => {
        for await (const name of remote.repositories(signal())) assert.fail(`listed ${name}`);
      })(),
      /registry target lists no catalog .*rules for it must name repositories exactly/,
    );
  });

  it('follows Link pages of tags', async () => {
    const { remote, server } = await remoteOn((req, res) => {
      if ((req.url ?? '').includes('last=b')) return json(res, 200, { name: 'a/b', tags: ['c'] });
      json(res, 200, { name: 'a/b', tags: ['a', 'b'] }, { Link: '</v2/a/b/tags/list?n=2&last=b>; rel="next"' });
    });
    assert.deepEqual(await remote.tags('a/b', signal()), ['a', 'b', 'c']);
    assert.equal(server.requests.length, 2);
  });

  it('takes a 405 to a tag delete for unsupported', async () => {
    const { remote } = await remoteOn((_req, res) => json(res, 405, { errors: [{ code: 'UNSUPPORTED', message: 'delete by digest' }] }));
    assert.equal(await remote.deleteTag('a/b', 'v1', signal()), 'unsupported');
  });

  it('hands a long Retry-After to the caller instead of waiting in line', async () => {
    const { remote, server } = await remoteOn((_req, res) =>
      json(res, 429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'later' }] }, { 'Retry-After': '120' }),
    );
    const err = await remote.tags('a/b', signal()).then(
      () => assert.fail('listed through a 429'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ReplicationError && err.retryable, String(err));
    assert.equal(err.retryAfterMs, 120_000);
    assert.equal(server.requests.length, 1);
  });

  it('marks a 503 retryable and quotes the registry', async () => {
    const { remote } = await remoteOn((_req, res) => json(res, 503, { errors: [{ code: 'UNAVAILABLE', message: 'maintenance' }] }));
    const err = await remote.hasBlob('a/b', DIGEST, signal()).then(
      () => assert.fail('answered through a 503'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ReplicationError && err.retryable && err.status === 503, String(err));
    const put = await remote.putManifest('a/b', 'v1', { digest: DIGEST, mediaType: OCI_MANIFEST, size: MANIFEST.length, bytes: MANIFEST }, signal()).then(
      () => assert.fail('stored through a 503'),
      (e: unknown) => e,
    );
    assert.ok(put instanceof ReplicationError);
    assert.match(put.message, /registry target, a\/b: PUT manifest v1 answered 503: .*maintenance/);
  });
});
