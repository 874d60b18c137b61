import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { blob, imageManifest, OCI_INDEX, OCI_MANIFEST, randomBlob, RegistryClient, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry, type TestRegistryOptions } from '../helpers/registry.js';

/** The HTTP API behaviour every storage × metadata combination must show. */
export function runApiSuite(name: string, options: () => Promise<TestRegistryOptions>): void {
  describe(`registry API on ${name}`, () => {
    let reg: TestRegistry;
    let c: RegistryClient;
    before(async () => {
      reg = await startTestRegistry(await options());
      c = new RegistryClient(reg.url);
    });
    after(async () => reg?.close());

    it('GET /v2/ answers 200 with the API version header', async () => {
      const res = await c.fetch('/v2/');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    });

    it('pushes a blob monolithically and serves it with digest, length, ETag and ranges', async () => {
      const b = randomBlob(100_000);
      await c.pushBlob('mono/app', b);
      const head = await c.fetch(`/v2/mono/app/blobs/${b.digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(b.size));
      assert.equal(head.headers.get('docker-content-digest'), b.digest);
      assert.equal(head.headers.get('accept-ranges'), 'bytes');
      assert.equal(head.headers.get('etag'), `"${b.digest}"`);
      const get = await c.fetch(`/v2/mono/app/blobs/${b.digest}`);
      assert.equal(get.status, 200);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), b.data);
      const part = await c.fetch(`/v2/mono/app/blobs/${b.digest}`, { headers: { Range: 'bytes=10-19' } });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-range'), `bytes 10-19/${b.size}`);
      assert.deepEqual(Buffer.from(await part.arrayBuffer()), b.data.subarray(10, 20));
      const suffix = await c.fetch(`/v2/mono/app/blobs/${b.digest}`, { headers: { Range: 'bytes=-5' } });
      assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), b.data.subarray(b.size - 5));
      const bad = await c.fetch(`/v2/mono/app/blobs/${b.digest}`, { headers: { Range: `bytes=${b.size}-` } });
      assert.equal(bad.status, 416);
      assert.equal(bad.headers.get('content-range'), `bytes */${b.size}`);
      const cond = await c.fetch(`/v2/mono/app/blobs/${b.digest}`, { headers: { 'If-None-Match': `"${b.digest}"` } });
      assert.equal(cond.status, 304);
    });

    it('runs a chunked upload with Content-Range, status checks and a final PUT', async () => {
      const b = randomBlob(3 * 1024 * 1024 + 17);
      const post = await c.fetch('/v2/chunked/app/blobs/uploads/', { method: 'POST' });
      assert.equal(post.status, 202);
      assert.equal(post.headers.get('range'), '0-0');
      const uuid = post.headers.get('docker-upload-uuid');
      assert.match(uuid ?? '', /^[0-9a-f-]{36}$/);
      let location = post.headers.get('location') as string;
      assert.ok(location.includes(uuid as string));
      const chunk = 1024 * 1024;
      for (let off = 0; off < b.size; off += chunk) {
        const part = b.data.subarray(off, Math.min(off + chunk, b.size));
        const res = await c.fetch(location, {
          method: 'PATCH',
          body: part,
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${off}-${off + part.length - 1}` },
        });
        assert.equal(res.status, 202, await res.text());
        assert.equal(res.headers.get('range'), `0-${off + part.length - 1}`);
        location = res.headers.get('location') as string;
      }
      const status = await c.fetch(location);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), `0-${b.size - 1}`);
      const put = await c.fetch(`${location}?digest=${b.digest}`, { method: 'PUT' });
      assert.equal(put.status, 201, await put.text());
      assert.equal(put.headers.get('location'), `/v2/chunked/app/blobs/${b.digest}`);
      assert.equal(put.headers.get('docker-content-digest'), b.digest);
      const get = await c.fetch(`/v2/chunked/app/blobs/${b.digest}`);
      assert.equal(sha256(Buffer.from(await get.arrayBuffer())), b.digest);
      const gone = await c.fetch(location);
      assert.equal(gone.status, 404);
      assert.equal(((await gone.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'BLOB_UPLOAD_UNKNOWN');
    });

    it('accepts a streamed PATCH without Content-Range, then a PUT with the last chunk', async () => {
      const b = randomBlob(500_000);
      const post = await c.fetch('/v2/streamed/app/blobs/uploads/', { method: 'POST' });
      const location = post.headers.get('location') as string;
      const first = b.data.subarray(0, 300_000);
      const patch = await c.fetch(location, { method: 'PATCH', body: first });
      assert.equal(patch.status, 202);
      assert.equal(patch.headers.get('range'), '0-299999');
      const put = await c.fetch(`${patch.headers.get('location')}?digest=${b.digest}`, {
        method: 'PUT',
        body: b.data.subarray(300_000),
        headers: { 'Content-Type': 'application/octet-stream' },
      });
      assert.equal(put.status, 201, await put.text());
      const head = await c.fetch(`/v2/streamed/app/blobs/${b.digest}`, { method: 'HEAD' });
      assert.equal(head.headers.get('content-length'), String(b.size));
    });

    it('refuses out-of-order and overlapping chunks with 416 and the current Range', async () => {
      const post = await c.fetch('/v2/order/app/blobs/uploads/', { method: 'POST' });
      const location = post.headers.get('location') as string;
      const ok = await c.fetch(location, { method: 'PATCH', body: Buffer.alloc(10, 1), headers: { 'Content-Range': '0-9' } });
      assert.equal(ok.status, 202);
      const gap = await c.fetch(location, { method: 'PATCH', body: Buffer.alloc(10, 2), headers: { 'Content-Range': '20-29' } });
      assert.equal(gap.status, 416);
      assert.equal(gap.headers.get('range'), '0-9');
      const overlap = await c.fetch(location, { method: 'PATCH', body: Buffer.alloc(10, 2), headers: { 'Content-Range': '5-14' } });
      assert.equal(overlap.status, 416);
      const status = await c.fetch(location);
      assert.equal(status.headers.get('range'), '0-9');
      const del = await c.fetch(location, { method: 'DELETE' });
      assert.equal(del.status, 204);
      assert.equal((await c.fetch(location)).status, 404);
    });

    it('rejects a wrong digest with DIGEST_INVALID and stores nothing', async () => {
      const b = randomBlob(1000);
      const wrong = sha256('something else');
      const res = await c.fetch(`/v2/wrong/app/blobs/uploads/?digest=${wrong}`, { method: 'POST', body: b.data });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'DIGEST_INVALID');
      assert.equal((await c.fetch(`/v2/wrong/app/blobs/${wrong}`, { method: 'HEAD' })).status, 404);
      assert.equal((await c.fetch(`/v2/wrong/app/blobs/${b.digest}`, { method: 'HEAD' })).status, 404);
      const leftovers: string[] = [];
      for await (const key of reg.driver.list('uploads')) leftovers.push(key);
      assert.deepEqual(leftovers, []);
    });

    it('keeps repositories apart, dedupes storage and mounts across repositories', async () => {
      const b = randomBlob(2048);
      await c.pushBlob('iso/one', b);
      assert.equal((await c.fetch(`/v2/iso/two/blobs/${b.digest}`, { method: 'HEAD' })).status, 404);
      const mount = await c.fetch(`/v2/iso/two/blobs/uploads/?mount=${b.digest}&from=iso/one`, { method: 'POST' });
      assert.equal(mount.status, 201);
      assert.equal(mount.headers.get('location'), `/v2/iso/two/blobs/${b.digest}`);
      assert.equal((await c.fetch(`/v2/iso/two/blobs/${b.digest}`, { method: 'HEAD' })).status, 200);
      const auto = await c.fetch(`/v2/iso/three/blobs/uploads/?mount=${b.digest}`, { method: 'POST' });
      assert.equal(auto.status, 201);
      const unknown = randomBlob(10);
      const fallback = await c.fetch(`/v2/iso/four/blobs/uploads/?mount=${unknown.digest}&from=iso/one`, { method: 'POST' });
      assert.equal(fallback.status, 202);
      assert.ok(fallback.headers.get('location'));
      const del = await c.fetch(`/v2/iso/two/blobs/${b.digest}`, { method: 'DELETE' });
      assert.equal(del.status, 202);
      assert.equal((await c.fetch(`/v2/iso/two/blobs/${b.digest}`, { method: 'HEAD' })).status, 404);
      assert.equal((await c.fetch(`/v2/iso/one/blobs/${b.digest}`, { method: 'HEAD' })).status, 200);
    });

    it('stores manifests byte for byte and serves them by tag and digest', async () => {
      const { manifest } = await c.pushImage('man/app', 'v1', [100, 200]);
      const get = await c.fetch('/v2/man/app/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
      assert.equal(get.status, 200);
      assert.equal(get.headers.get('content-type'), OCI_MANIFEST);
      assert.equal(get.headers.get('docker-content-digest'), manifest.digest);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), manifest.data);
      const head = await c.fetch(`/v2/man/app/manifests/${manifest.digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(manifest.size));
      assert.equal((await c.fetch('/v2/man/other/manifests/v1')).status, 404);
      assert.equal((await c.fetch(`/v2/man/app/manifests/nope`)).status, 404);
    });

    it('refuses a manifest whose blobs are not in the repository', async () => {
      const config = randomBlob(50);
      const layer = randomBlob(50);
      await c.pushBlob('elsewhere/app', config);
      await c.pushBlob('elsewhere/app', layer);
      const m = imageManifest(config, layer ? [layer] : []);
      const res = await c.fetch('/v2/missing/app/manifests/v1', { method: 'PUT', body: m.data, headers: { 'Content-Type': OCI_MANIFEST } });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'MANIFEST_BLOB_UNKNOWN');
    });

    it('deletes by digest (dropping its tags) and by tag (keeping the manifest)', async () => {
      const a = await c.pushImage('del/app', 'a');
      await c.pushManifest('del/app', 'b', a.manifest);
      assert.equal((await c.fetch('/v2/del/app/manifests/b', { method: 'DELETE' })).status, 202);
      assert.equal((await c.fetch('/v2/del/app/manifests/b')).status, 404);
      assert.equal((await c.fetch('/v2/del/app/manifests/a')).status, 200);
      await c.pushManifest('del/app', 'c', a.manifest);
      assert.equal((await c.fetch(`/v2/del/app/manifests/${a.manifest.digest}`, { method: 'DELETE' })).status, 202);
      assert.equal((await c.fetch('/v2/del/app/manifests/a')).status, 404);
      assert.equal((await c.fetch('/v2/del/app/manifests/c')).status, 404);
      assert.equal((await c.fetch(`/v2/del/app/manifests/${a.manifest.digest}`)).status, 404);
    });

    it('pushes one manifest under several tags with OCI-Tag headers', async () => {
      const img = await c.pushImage('multi/app', 'first');
      const res = await c.fetch(`/v2/multi/app/manifests/${img.manifest.digest}?tag=x&tag=y&tag=z`, {
        method: 'PUT',
        body: img.manifest.data,
        headers: { 'Content-Type': OCI_MANIFEST },
      });
      assert.equal(res.status, 201);
      assert.deepEqual(res.headers.get('oci-tag')?.split(', ').sort(), ['x', 'y', 'z']);
      for (const t of ['x', 'y', 'z'])
        assert.equal((await c.fetch(`/v2/multi/app/manifests/${t}`, { method: 'HEAD' })).headers.get('docker-content-digest'), img.manifest.digest);
    });

    it('lists tags in order with n/last paging and a Link header', async () => {
      const img = await c.pushImage('tags/app', 'b');
      for (const t of ['a', 'c', 'B', '1.10', '1.9']) await c.pushManifest('tags/app', t, img.manifest);
      const all = (await (await c.fetch('/v2/tags/app/tags/list')).json()) as { name: string; tags: string[] };
      assert.deepEqual(all, { name: 'tags/app', tags: ['1.10', '1.9', 'B', 'a', 'b', 'c'] });
      const page = await c.fetch('/v2/tags/app/tags/list?n=2');
      assert.deepEqual(((await page.json()) as { tags: string[] }).tags, ['1.10', '1.9']);
      assert.equal(page.headers.get('link'), '</v2/tags/app/tags/list?n=2&last=1.9>; rel="next"');
      const next = await c.fetch('/v2/tags/app/tags/list?n=2&last=1.9');
      assert.deepEqual(((await next.json()) as { tags: string[] }).tags, ['B', 'a']);
      const zero = await c.fetch('/v2/tags/app/tags/list?n=0');
      assert.deepEqual(((await zero.json()) as { tags: string[] }).tags, []);
      assert.equal(zero.headers.get('link'), null);
      const end = await c.fetch('/v2/tags/app/tags/list?n=10&last=b');
      assert.deepEqual(((await end.json()) as { tags: string[] }).tags, ['c']);
      assert.equal(end.headers.get('link'), null);
      assert.equal((await c.fetch('/v2/tags/nothing/tags/list')).status, 404);
    });

    it('lists the catalog with paging', async () => {
      await c.pushImage('cat/a', 'v');
      await c.pushImage('cat/b', 'v');
      const all = (await (await c.fetch('/v2/_catalog?n=1000')).json()) as { repositories: string[] };
      assert.ok(all.repositories.includes('cat/a') && all.repositories.includes('cat/b'));
      assert.deepEqual(
        [...all.repositories].sort((x, y) => (x < y ? -1 : 1)),
        all.repositories,
      );
      const first = await c.fetch('/v2/_catalog?n=1');
      assert.match(first.headers.get('link') ?? '', /rel="next"/);
    });

    it('serves referrers with artifactType filtering and answers OCI-Subject', async () => {
      const img = await c.pushImage('ref/app', 'v1');
      const empty = blob('{}');
      await c.pushBlob('ref/app', empty);
      const sig = blob(`signature ${Date.now()}`);
      await c.pushBlob('ref/app', sig);
      const subject = { mediaType: OCI_MANIFEST, digest: img.manifest.digest, size: img.manifest.size };
      const art = imageManifest(empty, [sig], { artifactType: 'application/vnd.example.sig', subject, annotations: { 'org.example': 'yes' } });
      const put = await c.pushManifest('ref/app', art.digest, art);
      assert.equal(put.headers.get('oci-subject'), img.manifest.digest);
      const res = await c.fetch(`/v2/ref/app/referrers/${img.manifest.digest}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), OCI_INDEX);
      const index = (await res.json()) as { manifests: Array<{ digest: string; artifactType: string; annotations: Record<string, string> }> };
      assert.equal(index.manifests.length, 1);
      assert.equal(index.manifests[0]?.digest, art.digest);
      assert.equal(index.manifests[0]?.artifactType, 'application/vnd.example.sig');
      assert.deepEqual(index.manifests[0]?.annotations, { 'org.example': 'yes' });
      const filtered = await c.fetch(`/v2/ref/app/referrers/${img.manifest.digest}?artifactType=application/other`);
      assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
      assert.equal(((await filtered.json()) as { manifests: unknown[] }).manifests.length, 0);
      const none = await c.fetch(`/v2/ref/app/referrers/${sha256('nothing')}`);
      assert.equal(none.status, 200);
      assert.equal(((await none.json()) as { manifests: unknown[] }).manifests.length, 0);
      assert.equal((await c.fetch('/v2/ref/app/referrers/sha256:zz')).status, 400);
    });

    it('accepts sha512 blobs and manifests pushed by sha512 digest', async () => {
      const data = Buffer.from(`sha512 layer ${Date.now()}`);
      const d512 = `sha512:${createHash('sha512').update(data).digest('hex')}`;
      const post = await c.fetch('/v2/sha/app/blobs/uploads/', { method: 'POST' });
      const location = post.headers.get('location') as string;
      assert.equal((await c.fetch(location, { method: 'PATCH', body: data })).status, 202);
      const put = await c.fetch(`${location}?digest=${d512}`, { method: 'PUT' });
      assert.equal(put.status, 201, await put.text());
      const get = await c.fetch(`/v2/sha/app/blobs/${d512}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
      const config = blob('{"architecture":"amd64","os":"linux"}');
      await c.pushBlob('sha/app', config);
      const m = imageManifest(config, [{ data, digest: d512, size: data.length }]);
      const m512 = `sha512:${createHash('sha512').update(m.data).digest('hex')}`;
      const res = await c.fetch(`/v2/sha/app/manifests/${m512}`, { method: 'PUT', body: m.data, headers: { 'Content-Type': OCI_MANIFEST } });
      assert.equal(res.status, 201, await res.text());
      assert.equal(res.headers.get('docker-content-digest'), m512);
      assert.equal((await c.fetch(`/v2/sha/app/manifests/${m512}`)).status, 200);
    });

    it('stores Docker schema2 manifests and manifest lists with their media types', async () => {
      const config = blob('{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      const layer = randomBlob(4000);
      for (const b of [config, layer]) await c.pushBlob('docker/app', b);
      const DOCKER = 'application/vnd.docker.distribution.manifest.v2+json';
      const LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
      const manifest = blob(
        JSON.stringify(
          {
            schemaVersion: 2,
            mediaType: DOCKER,
            config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.size, digest: config.digest },
            layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.zstd', size: layer.size, digest: layer.digest }],
          },
          null,
          3,
        ),
      );
      await c.pushManifest('docker/app', 'arm64', manifest, DOCKER);
      const list = blob(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: LIST,
          manifests: [{ mediaType: DOCKER, size: manifest.size, digest: manifest.digest, platform: { architecture: 'arm64', os: 'linux' } }],
        }),
      );
      await c.pushManifest('docker/app', 'latest', list, LIST);
      const get = await c.fetch('/v2/docker/app/manifests/latest');
      assert.equal(get.headers.get('content-type'), LIST);
      const child = await c.fetch('/v2/docker/app/manifests/arm64');
      assert.equal(child.headers.get('content-type'), DOCKER);
      assert.deepEqual(Buffer.from(await child.arrayBuffer()), manifest.data);
      const mismatch = await c.fetch('/v2/docker/app/manifests/bad', { method: 'PUT', body: manifest.data, headers: { 'Content-Type': OCI_MANIFEST } });
      assert.equal(mismatch.status, 400);
    });

    it('lets concurrent pushes of one blob all succeed with one stored copy', async () => {
      const b = randomBlob(300_000);
      const results = await Promise.all(
        ['same/a', 'same/a', 'same/b', 'same/c', 'same/b'].map((repo) =>
          c.fetch(`/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { method: 'POST', body: b.data }).then((r) => r.status),
        ),
      );
      assert.deepEqual(results, [201, 201, 201, 201, 201]);
      const copies: string[] = [];
      for await (const key of reg.driver.list('blobs')) if (key.includes(b.digest.slice(7))) copies.push(key);
      assert.equal(copies.length, 1);
      for (const repo of ['same/a', 'same/b', 'same/c']) {
        const get = await c.fetch(`/v2/${repo}/blobs/${b.digest}`);
        assert.equal(sha256(Buffer.from(await get.arrayBuffer())), b.digest);
      }
    });

    it('resolves concurrent writes to one tag to exactly one of them', async () => {
      const images = [];
      for (let i = 0; i < 6; i++) images.push(await c.pushImage('race/app', `base-${i}`));
      const statuses = await Promise.all(
        images.map((img) =>
          c.fetch('/v2/race/app/manifests/latest', { method: 'PUT', body: img.manifest.data, headers: { 'Content-Type': OCI_MANIFEST } }).then((r) => r.status),
        ),
      );
      assert.deepEqual(
        statuses,
        images.map(() => 201),
      );
      const get = await c.fetch('/v2/race/app/manifests/latest');
      const bytes = Buffer.from(await get.arrayBuffer());
      const digest = get.headers.get('docker-content-digest');
      assert.equal(sha256(bytes), digest);
      assert.ok(images.some((img) => img.manifest.digest === digest));
    });

    it('refuses writes in read-only mode while pulls go on', async () => {
      const img = await c.pushImage('ro/app', 'v1');
      const ro = await startTestRegistry({ driver: async () => reg.driver, metadata: async () => reg.metadata, config: { readOnly: true } });
      try {
        const rc = new RegistryClient(ro.url);
        assert.equal((await rc.fetch('/v2/ro/app/manifests/v1')).status, 200);
        for (const [method, path] of [
          ['POST', '/v2/ro/app/blobs/uploads/'],
          ['PUT', '/v2/ro/app/manifests/v2'],
          ['DELETE', `/v2/ro/app/manifests/${img.manifest.digest}`],
        ] as const) {
          const res = await rc.fetch(path, { method, ...(method === 'PUT' ? { body: img.manifest.data } : {}), headers: { 'Content-Type': OCI_MANIFEST } });
          assert.equal(res.status, 405, `${method} ${path}`);
          const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
          assert.equal(body.errors[0]?.code, 'UNSUPPORTED');
          assert.match(body.errors[0]?.message ?? '', /read-only/);
        }
      } finally {
        await ro.app.close();
      }
    });

    it('accepts a manifest whose subject does not exist, and an index of pushed manifests', async () => {
      const img = await c.pushImage('idx/app', 'amd64');
      const img2 = await c.pushImage('idx/app', 'arm64');
      const index = blob(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [img, img2].map((i, n) => ({
            mediaType: OCI_MANIFEST,
            digest: i.manifest.digest,
            size: i.manifest.size,
            platform: { os: 'linux', architecture: n ? 'arm64' : 'amd64' },
          })),
        }),
      );
      await c.pushManifest('idx/app', 'multi', index, OCI_INDEX);
      const get = await c.fetch('/v2/idx/app/manifests/multi');
      assert.equal(get.headers.get('content-type'), OCI_INDEX);
      const dangling = imageManifest(img.config, img.layers, { subject: { mediaType: OCI_MANIFEST, digest: sha256('absent'), size: 1 } });
      const res = await c.pushManifest('idx/app', dangling.digest, dangling);
      assert.equal(res.headers.get('oci-subject'), sha256('absent'));
      const badIndex = blob(
        JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256('nope'), size: 3 }] }),
      );
      const bad = await c.fetch('/v2/idx/app/manifests/bad', { method: 'PUT', body: badIndex.data, headers: { 'Content-Type': OCI_INDEX } });
      assert.equal(bad.status, 400);
    });
  });
}
