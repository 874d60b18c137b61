import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { BerthConfigInput } from '../../server/config.js';
import { OCI_MANIFEST, RegistryClient, blob, imageManifest, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { json, startFakeServer, type FakeServer } from './helpers.js';

/**
 * tags/list and referrers of a proxy repository: asked of the upstream (a real Berth, counting what it
 * is asked), answered from the cache with a Warning while the upstream is down.
 */

const ACCEPT = { accept: OCI_MANIFEST };
const SIGNATURE = 'application/vnd.example.signature';
const SBOM = 'application/vnd.example.sbom';

function proxyConfig(upstreamUrl: string): BerthConfigInput {
  return { proxy: { upstreams: [{ namespace: 'hub', urls: [upstreamUrl], tagTtlSeconds: 0, timeoutSeconds: 2, maxWaitSeconds: 2 }] } } as BerthConfigInput;
}

async function startCountedUpstream(): Promise<{ reg: TestRegistry; seen: string[] }> {
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

/** An artifact of `artifactType` whose subject is `subject`, pushed by digest. */
async function pushReferrer(client: RegistryClient, repo: string, subject: Blob, artifactType: string): Promise<Blob> {
  const config = blob(JSON.stringify({ artifact: artifactType, at: Math.random() }));
  await client.pushBlob(repo, config);
  const manifest = imageManifest(config, [], { artifactType, subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size } });
  await client.pushManifest(repo, manifest.digest, manifest);
  return manifest;
}

interface ErrorBody {
  errors: Array<{ code: string; message: string }>;
}

describe('proxy namespaces: tags/list and referrers from the upstream', () => {
  let up: { reg: TestRegistry; seen: string[] };
  let proxy: TestRegistry;
  let client: RegistryClient;
  const stale: string[] = [];
  let image: { manifest: Blob };
  let signature: Blob;
  let sbom: Blob;

  before(async () => {
    up = await startCountedUpstream();
    const pusher = new RegistryClient(up.reg.url);
    image = await pusher.pushImage('team/app', 'v1', [100]);
    for (const tag of ['v2', 'v3']) await pusher.pushManifest('team/app', tag, image.manifest);
    signature = await pushReferrer(pusher, 'team/app', image.manifest, SIGNATURE);
    sbom = await pushReferrer(pusher, 'team/app', image.manifest, SBOM);
    proxy = await startTestRegistry({ config: proxyConfig(up.reg.url), deps: { onProxyStale: (name) => stale.push(name) } });
    client = new RegistryClient(proxy.url);
  });
  after(async () => {
    await proxy?.close();
    await up?.reg.close();
  });

  it("lists the upstream's tags, none of them pulled here, under the local name", async () => {
    const res = await client.fetch('/v2/hub/team/app/tags/list');
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { name: 'hub/team/app', tags: ['v1', 'v2', 'v3'] });
    assert.equal(res.headers.get('warning'), null);
    assert.ok(
      up.seen.some((r) => /^GET \/v2\/.+\/tags\/list$/.test(r)),
      up.seen.join('\n'),
    );
  });

  it("passes n and last through and rewrites the upstream's Link to the local name", async () => {
    const first = await client.fetch('/v2/hub/team/app/tags/list?n=2');
    assert.deepEqual(((await first.json()) as { tags: string[] }).tags, ['v1', 'v2']);
    const link = first.headers.get('link');
    assert.equal(link, '</v2/hub/team/app/tags/list?n=2&last=v2>; rel="next"');
    assert.ok(
      up.seen.some((r) => /^GET \/v2\/.+\/tags\/list\?n=2$/.test(r)),
      up.seen.join('\n'),
    );
    const second = await client.fetch(/<([^>]+)>/.exec(link ?? '')?.[1] ?? '');
    assert.deepEqual(((await second.json()) as { tags: string[] }).tags, ['v3']);
    assert.equal(second.headers.get('link'), null);
  });

  it('answers NAME_UNKNOWN for a name neither the upstream nor the cache has', async () => {
    const res = await client.fetch('/v2/hub/team/nothing/tags/list');
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as ErrorBody).errors[0]?.code, 'NAME_UNKNOWN');
  });

  it("lists the upstream's referrers, filtered by artifactType", async () => {
    const res = await client.fetch(`/v2/hub/team/app/referrers/${image.manifest.digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
    const index = (await res.json()) as { manifests: Array<{ digest: string; artifactType?: string }> };
    assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [signature.digest, sbom.digest].sort());
    const filtered = await client.fetch(`/v2/hub/team/app/referrers/${image.manifest.digest}?artifactType=${encodeURIComponent(SBOM)}`);
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual(
      ((await filtered.json()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest),
      [sbom.digest],
    );
  });

  it('answers from the cache with a Warning while the upstream is down; an uncached name is a 503', async () => {
    // What gets cached: tag v1 and the signature (pulled by digest).
    assert.equal((await client.fetch('/v2/hub/team/app/manifests/v1', { headers: ACCEPT })).status, 200);
    assert.equal((await client.fetch(`/v2/hub/team/app/manifests/${signature.digest}`, { headers: ACCEPT })).status, 200);
    await up.reg.close();

    const tags = await client.fetch('/v2/hub/team/app/tags/list');
    assert.equal(tags.status, 200);
    assert.deepEqual(await tags.json(), { name: 'hub/team/app', tags: ['v1'] });
    assert.match(tags.headers.get('warning') ?? '', /^110 - "Response is stale: upstream hub unavailable: .+"$/);

    const referrers = await client.fetch(`/v2/hub/team/app/referrers/${image.manifest.digest}`);
    assert.equal(referrers.status, 200);
    assert.match(referrers.headers.get('warning') ?? '', /^110 - "Response is stale: upstream hub unavailable: .+"$/);
    assert.deepEqual(
      ((await referrers.json()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest),
      [signature.digest],
    );
    assert.deepEqual(stale, ['hub', 'hub']);

    const uncached = await client.fetch('/v2/hub/team/other/tags/list');
    assert.equal(uncached.status, 503);
    assert.match(((await uncached.json()) as ErrorBody).errors[0]?.message ?? '', /^not cached, and .*upstream hub/);
  });
});

describe('proxy namespaces: an upstream that has lost a name, and one without a referrers API', () => {
  let upstream: FakeServer;
  let proxy: TestRegistry;
  const config = blob('{}');
  const manifest = imageManifest(config, []);
  let gone = false;

  before(async () => {
    upstream = await startFakeServer((req, res) => {
      if (!gone && (req.url === '/v2/team/old/manifests/v1' || req.url === `/v2/team/old/manifests/${manifest.digest}`)) {
        res.writeHead(200, { 'Content-Type': OCI_MANIFEST, 'Content-Length': manifest.size, 'Docker-Content-Digest': manifest.digest });
        res.end(req.method === 'HEAD' ? undefined : manifest.data);
        return;
      }
      json(res, 404, { errors: [{ code: req.url?.includes('/tags/list') ? 'NAME_UNKNOWN' : 'NOT_FOUND', message: 'not here' }] });
    });
    proxy = await startTestRegistry({ config: proxyConfig(upstream.url) });
  });
  after(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  it('lists the cached tags, without a Warning, of a name the upstream no longer has', async () => {
    const client = new RegistryClient(proxy.url);
    assert.equal((await client.fetch('/v2/hub/team/old/manifests/v1', { headers: ACCEPT })).status, 200);
    gone = true;
    const res = await client.fetch('/v2/hub/team/old/tags/list');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { name: 'hub/team/old', tags: ['v1'] });
    assert.equal(res.headers.get('warning'), null);
  });

  it('falls back to the cached referrers when the upstream answers 404 for the referrers API', async () => {
    const res = await new RegistryClient(proxy.url).fetch(`/v2/hub/team/old/referrers/${manifest.digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('warning'), null);
    assert.deepEqual(((await res.json()) as { manifests: unknown[] }).manifests, []);
    assert.ok(upstream.requests.some((r) => r.url === `/v2/team/old/referrers/${manifest.digest}`));
  });
});
