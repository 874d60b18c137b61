import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { BerthConfigInput } from '../../server/config.js';
import { OCI_MANIFEST, RegistryClient, blob, imageManifest, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { json, startFakeServer, type FakeServer } from './helpers.js';

/**
 * A tag whose HEAD at the upstream names a new digest, and whose new manifest cannot then be fetched
 * (manifest-cache.ts, the fetch after a moved HEAD): unavailable serves the cached copy with the
 * stale Warning and does not count as a check; a 404 for the new digest is the client's 404.
 */

const ACCEPT = { accept: OCI_MANIFEST };

describe('proxy namespaces: a tag moved upstream whose new manifest cannot be fetched', () => {
  const old = imageManifest(blob('{"moved":"old"}'), []);
  const moved = imageManifest(blob('{"moved":"new"}'), []);
  /** What the upstream's tag names, and how it answers a GET of the new manifest. */
  const upstreamState: { tag: Blob; newGet: number } = { tag: old, newGet: 200 };
  let upstream: FakeServer;
  let proxy: TestRegistry;
  let client: RegistryClient;
  const stale: string[] = [];

  function sendManifest(req: http.IncomingMessage, res: http.ServerResponse, m: Blob): void {
    res.writeHead(200, { 'Content-Type': OCI_MANIFEST, 'Content-Length': m.size, 'Docker-Content-Digest': m.digest });
    res.end(req.method === 'HEAD' ? undefined : m.data);
  }

  before(async () => {
    upstream = await startFakeServer((req, res) => {
      if (req.url === '/v2/team/app/manifests/v1') return sendManifest(req, res, upstreamState.tag);
      if (req.url === `/v2/team/app/manifests/${old.digest}`) return sendManifest(req, res, old);
      if (req.url === `/v2/team/app/manifests/${moved.digest}`) {
        if (upstreamState.newGet === 200) return sendManifest(req, res, moved);
        return json(res, upstreamState.newGet, { errors: [{ code: upstreamState.newGet === 404 ? 'MANIFEST_UNKNOWN' : 'UNAVAILABLE', message: 'not now' }] });
      }
      json(res, 404, { errors: [{ code: 'NAME_UNKNOWN', message: 'no' }] });
    });
    const config = { proxy: { upstreams: [{ namespace: 'hub', urls: [upstream.url], tagTtlSeconds: 0, timeoutSeconds: 2 }] } } as BerthConfigInput;
    proxy = await startTestRegistry({ config, deps: { onProxyStale: (name) => stale.push(name) } });
    client = new RegistryClient(proxy.url);
    const first = await client.fetch('/v2/hub/team/app/manifests/v1', { headers: ACCEPT });
    assert.equal(first.headers.get('docker-content-digest'), old.digest);
    await first.arrayBuffer();
  });
  after(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  it('serves the cached copy with the Warning when the GET of the new digest answers 503', async () => {
    upstreamState.tag = moved;
    upstreamState.newGet = 503;
    const seen = upstream.requests.length;
    const res = await client.fetch('/v2/hub/team/app/manifests/v1', { headers: ACCEPT });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), old.digest);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), old.data);
    assert.match(res.headers.get('warning') ?? '', /^110 - "Response is stale: upstream hub unavailable: .*answered 503 to GET .*"$/);
    assert.deepEqual(stale, ['hub']);
    // The HEAD said the tag moved, the GET of where it moved to failed: both were asked.
    assert.deepEqual(
      upstream.requests.slice(seen).map((r) => `${r.method} ${r.url}`),
      ['HEAD /v2/team/app/manifests/v1', `GET /v2/team/app/manifests/${moved.digest}`],
    );
    assert.equal(await proxy.metadata.getManifest('hub/team/app', moved.digest), undefined, 'nothing of the new manifest is cached');
  });

  it('answers MANIFEST_UNKNOWN, not the cached copy, when the upstream says the new digest does not exist', async () => {
    upstreamState.newGet = 404;
    const res = await client.fetch('/v2/hub/team/app/manifests/v1', { headers: ACCEPT });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'MANIFEST_UNKNOWN');
    assert.deepEqual(stale, ['hub'], 'not served stale');
  });

  it('moves the tag once the upstream serves the new manifest again', async () => {
    upstreamState.newGet = 200;
    const res = await client.fetch('/v2/hub/team/app/manifests/v1', { headers: ACCEPT });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), moved.digest);
    assert.equal(res.headers.get('warning'), null);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), moved.data);
  });
});
