import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { BerthConfigInput } from '../../server/config.js';
import { OCI_MANIFEST, RegistryClient, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

/**
 * Proxy namespaces end to end: a real Berth as the upstream, a real Berth pulling through it over
 * loopback, every request to the upstream counted by a hook on the upstream itself.
 */

const ACCEPT = { accept: OCI_MANIFEST };

interface CountedUpstream {
  reg: TestRegistry;
  /** `METHOD /v2/...` of every request the upstream received, in order. */
  seen: string[];
}

async function startUpstream(): Promise<CountedUpstream> {
  const seen: string[] = [];
  const reg = await startTestRegistry({
    deps: {
      plugins: async (app: FastifyInstance) => {
        app.addHook('onRequest', async (request) => {
          seen.push(`${request.method} ${request.raw.url ?? ''}`);
        });
      },
    },
  });
  return { reg, seen };
}

function proxyConfig(upstreamUrl: string, extra: Record<string, unknown> = {}): BerthConfigInput {
  return {
    proxy: { upstreams: [{ namespace: 'hub', urls: [upstreamUrl], hosts: ['upstream.example'], timeoutSeconds: 2, maxWaitSeconds: 2, ...extra }] },
  } as BerthConfigInput;
}

describe('proxy namespaces: pulling through a Berth upstream', () => {
  let up: CountedUpstream;
  let proxy: TestRegistry;
  let image: Awaited<ReturnType<RegistryClient['pushImage']>>;
  let client: RegistryClient;

  before(async () => {
    up = await startUpstream();
    image = await new RegistryClient(up.reg.url).pushImage('team/app', 'v1', [300_000, 5000]);
    proxy = await startTestRegistry({ config: proxyConfig(up.reg.url) });
    client = new RegistryClient(proxy.url);
  });
  after(async () => {
    await proxy?.close();
    await up?.reg.close();
  });

  it('pulls an image by tag: manifest and every blob, bytes verified', async () => {
    const res = await client.fetch('/v2/hub/team/app/manifests/v1', { headers: ACCEPT });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get('docker-content-digest'), image.manifest.digest);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), image.manifest.digest);
    for (const b of [image.config, ...image.layers]) {
      const blob = await client.fetch(`/v2/hub/team/app/blobs/${b.digest}`);
      assert.equal(blob.status, 200);
      assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), b.digest);
    }
  });

  it('pulls by a cached digest, manifest and blobs, without one upstream request', async () => {
    await (await client.fetch(`/v2/hub/team/app/manifests/${image.manifest.digest}`, { headers: ACCEPT })).arrayBuffer();
    for (const b of image.layers) await (await client.fetch(`/v2/hub/team/app/blobs/${b.digest}`)).arrayBuffer();
    const before = up.seen.length;
    const res = await client.fetch(`/v2/hub/team/app/manifests/${image.manifest.digest}`, { headers: ACCEPT });
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), image.manifest.digest);
    for (const b of [image.config, ...image.layers]) {
      const blob = await client.fetch(`/v2/hub/team/app/blobs/${b.digest}`);
      assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), b.digest);
    }
    // Within the tag's TTL a HEAD by tag is answered from the cache too.
    assert.equal((await client.fetch('/v2/hub/team/app/manifests/v1', { method: 'HEAD', headers: ACCEPT })).status, 200);
    assert.deepEqual(up.seen.slice(before), []);
  });

  it('pulls a digest never pulled by tag, and answers an unknown name with 404', async () => {
    const other = await new RegistryClient(up.reg.url).pushImage('team/other', 'x', [1000]);
    const res = await client.fetch(`/v2/hub/team/other/manifests/${other.manifest.digest}`, { headers: ACCEPT });
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), other.manifest.digest);
    // A HEAD of a blob not cached answers with the upstream's size (and starts its fill).
    const layer = other.layers[0];
    assert.ok(layer);
    const head = await client.fetch(`/v2/hub/team/other/blobs/${layer.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(layer.size));
    const got = await client.fetch(`/v2/hub/team/other/blobs/${layer.digest}`);
    assert.equal(sha256(Buffer.from(await got.arrayBuffer())), layer.digest);
    const missing = await client.fetch('/v2/hub/team/nothing/manifests/v1', { headers: ACCEPT });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'MANIFEST_UNKNOWN');
    const blob = await client.fetch(`/v2/hub/team/app/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(blob.status, 404);
  });

  it('refuses pushes, uploads, mounts and deletes into the proxy namespace, with the reason', async () => {
    const attempts: Array<[string, string]> = [
      ['PUT', `/v2/hub/team/app/manifests/v2`],
      ['POST', `/v2/hub/team/app/blobs/uploads/`],
      ['POST', `/v2/hub/team/app/blobs/uploads/?mount=${image.config.digest}&from=team/app`],
      ['DELETE', `/v2/hub/team/app/manifests/${image.manifest.digest}`],
      ['DELETE', `/v2/hub/team/app/blobs/${image.config.digest}`],
    ];
    for (const [method, path] of attempts) {
      const res = await client.fetch(path, { method, ...(method === 'PUT' ? { body: image.manifest.data, headers: { 'content-type': OCI_MANIFEST } } : {}) });
      assert.equal(res.status, 403, `${method} ${path}`);
      const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0]?.code, 'DENIED');
      assert.equal(body.errors[0]?.message, `hub/ is a pull-through cache of ${up.reg.url}: push to another namespace`);
    }
    // Other namespaces still take pushes.
    await new RegistryClient(proxy.url).pushImage('local/app', 'v1', [100]);
  });

  it("maps containerd's ?ns= to the upstream's namespace", async () => {
    const res = await client.fetch('/v2/team/app/manifests/v1?ns=upstream.example', { headers: ACCEPT });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), image.manifest.digest);
    const blob = await client.fetch(`/v2/team/app/blobs/${image.config.digest}?ns=UPSTREAM.example`);
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), image.config.digest);
    // An unknown ns is an ordinary local name.
    assert.equal((await client.fetch('/v2/team/app/manifests/v1?ns=elsewhere.example', { headers: ACCEPT })).status, 404);
  });
});

describe('proxy namespaces: tag freshness and an unavailable upstream', () => {
  it('serves a moved tag after the TTL, the cached one within it', async () => {
    const up = await startUpstream();
    const fresh = await startTestRegistry({ config: proxyConfig(up.reg.url, { tagTtlSeconds: 0 }) });
    const cached = await startTestRegistry({ config: proxyConfig(up.reg.url, { tagTtlSeconds: 3600 }) });
    try {
      const pusher = new RegistryClient(up.reg.url);
      const first = await pusher.pushImage('team/app', 'v1', [100]);
      const digestAt = async (reg: TestRegistry) =>
        (await new RegistryClient(reg.url).fetch('/v2/hub/team/app/manifests/v1', { headers: ACCEPT })).headers.get('docker-content-digest');
      assert.equal(await digestAt(fresh), first.manifest.digest);
      assert.equal(await digestAt(cached), first.manifest.digest);
      const second = await pusher.pushImage('team/app', 'v1', [200]);
      assert.equal(await digestAt(fresh), second.manifest.digest);
      assert.equal(await digestAt(cached), first.manifest.digest);
      // Moved back: the content is cached already, only the tag moves.
      await pusher.pushManifest('team/app', 'v1', first.manifest);
      assert.equal(await digestAt(fresh), first.manifest.digest);
    } finally {
      await fresh.close();
      await cached.close();
      await up.reg.close();
    }
  });

  it('serves a cached tag with a Warning while the upstream is down; an uncached one is a clear 503', async () => {
    const up = await startUpstream();
    const stale: string[] = [];
    const proxy = await startTestRegistry({ config: proxyConfig(up.reg.url, { tagTtlSeconds: 0 }), deps: { onProxyStale: (name) => stale.push(name) } });
    try {
      const image = await new RegistryClient(up.reg.url).pushImage('team/app', 'v1', [100]);
      const client = new RegistryClient(proxy.url);
      assert.equal((await client.fetch('/v2/hub/team/app/manifests/v1', { headers: ACCEPT })).status, 200);
      await up.reg.close();

      const res = await client.fetch('/v2/hub/team/app/manifests/v1', { headers: ACCEPT });
      assert.equal(res.status, 200);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), image.manifest.digest);
      assert.match(res.headers.get('warning') ?? '', /^110 - "Response is stale: upstream hub unavailable: .+"$/);
      assert.deepEqual(stale, ['hub']);

      const uncached = await client.fetch('/v2/hub/team/app/manifests/v2', { headers: ACCEPT });
      assert.equal(uncached.status, 503);
      const body = (await uncached.json()) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0]?.code, 'UNAVAILABLE');
      assert.match(body.errors[0]?.message ?? '', /^not cached, and .*upstream hub/);
      const blob = await client.fetch(`/v2/hub/team/app/blobs/${image.layers[0]?.digest ?? ''}`);
      assert.equal(blob.status, 503);
    } finally {
      await proxy.close();
    }
  });
});
