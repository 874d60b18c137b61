import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { BerthConfigInput } from '../../server/config.js';
import { RegistryClient, randomBlob, sha256, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFakeServer, type FakeServer } from './helpers.js';

/**
 * A Range on a blob the proxy has not cached yet: answered 206 from the blob's fill as it arrives,
 * and never ending cleanly before the fill verified the digest.
 */

function proxyConfig(upstreamUrl: string): BerthConfigInput {
  return { proxy: { upstreams: [{ namespace: 'hub', urls: [upstreamUrl], timeoutSeconds: 5 }] } } as BerthConfigInput;
}

describe('proxy namespaces: a Range on a blob not cached yet', () => {
  let upstream: TestRegistry;
  let proxy: TestRegistry;
  let client: RegistryClient;
  const blobs: Blob[] = [randomBlob(3 * 1024 * 1024 + 17), randomBlob(64 * 1024 + 5), randomBlob(200_000)];

  before(async () => {
    upstream = await startTestRegistry();
    const pusher = new RegistryClient(upstream.url);
    for (const b of blobs) await pusher.pushBlob('team/app', b);
    proxy = await startTestRegistry({ config: proxyConfig(upstream.url) });
    client = new RegistryClient(proxy.url);
  });
  after(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  async function notCached(b: Blob): Promise<void> {
    assert.equal(await proxy.metadata.getBlobLink('hub/team/app', b.digest), undefined, 'the blob is not linked yet');
  }

  it('answers 206 with exactly the bytes asked for, from the fill; the blob is cached after it', async () => {
    const [big] = blobs as [Blob];
    await notCached(big);
    const res = await client.fetch(`/v2/hub/team/app/blobs/${big.digest}`, { headers: { range: 'bytes=1000000-2100000' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 1000000-2100000/${big.size}`);
    assert.equal(res.headers.get('content-length'), '1100001');
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(big.data.subarray(1000000, 2100001)));
    // The fill ran to its end and linked the blob: the whole of it comes from the cache now.
    const whole = await client.fetch(`/v2/hub/team/app/blobs/${big.digest}`);
    assert.equal(whole.status, 200);
    assert.equal(sha256(Buffer.from(await whole.arrayBuffer())), big.digest);
  });

  it('serves a suffix range, which lies in the bytes a fill sends only after its commit', async () => {
    const b = blobs[1] as Blob;
    await notCached(b);
    const res = await client.fetch(`/v2/hub/team/app/blobs/${b.digest}`, { headers: { range: 'bytes=-100' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes ${b.size - 100}-${b.size - 1}/${b.size}`);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(b.data.subarray(b.size - 100)));
  });

  it('answers an unsatisfiable range with 416, as the cached path does', async () => {
    const b = blobs[2] as Blob;
    await notCached(b);
    const res = await client.fetch(`/v2/hub/team/app/blobs/${b.digest}`, { headers: { range: `bytes=${b.size}-` } });
    assert.equal(res.status, 416);
    assert.equal(res.headers.get('content-range'), `bytes */${b.size}`);
    assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'RANGE_INVALID');
  });
});

describe('proxy namespaces: a Range on a blob whose upstream fails it', () => {
  let upstream: FakeServer;
  let proxy: TestRegistry;
  const good = randomBlob(1024 * 1024);
  const served = randomBytes(good.size);
  const cut = randomBlob(1024 * 1024);
  // The rest of the corrupt body waits for the test to hold the range response's headers, so the
  // fill fails while that response is under way rather than before it started.
  let sendRest: () => void = () => undefined;
  const restAllowed = new Promise<void>((resolve) => (sendRest = resolve));

  before(async () => {
    upstream = await startFakeServer((req, res) => {
      if (req.url === `/v2/team/bad/blobs/${good.digest}`) {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': served.length });
        res.write(served.subarray(0, 4096));
        void restAllowed.then(() => res.end(served.subarray(4096)));
        return;
      }
      if (req.url === `/v2/team/reset/blobs/${cut.digest}`) {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': cut.size });
        res.write(cut.data.subarray(0, 4096), () => res.destroy());
        return;
      }
      res.writeHead(404, { 'Content-Length': 0 }).end();
    });
    proxy = await startTestRegistry({ config: proxyConfig(upstream.url) });
  });
  after(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  it('cuts the range response short instead of ending it cleanly', async () => {
    const res = await new RegistryClient(proxy.url).fetch(`/v2/hub/team/bad/blobs/${good.digest}`, { headers: { range: 'bytes=0-999' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-length'), '1000');
    sendRest();
    await assert.rejects(res.arrayBuffer());
    assert.equal(await proxy.metadata.getBlobLink('hub/team/bad', good.digest), undefined);
  });

  it('answers 503 when the fill fails before the first byte of the range could go out', async () => {
    // A one-byte range is all last byte: nothing is sent before the commit, so the status can still say it.
    const res = await new RegistryClient(proxy.url).fetch(`/v2/hub/team/reset/blobs/${cut.digest}`, { headers: { range: 'bytes=0-0' } });
    assert.equal(res.status, 503);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]?.code, 'UNAVAILABLE');
    assert.match(body.errors[0]?.message ?? '', /broke off after 4096 bytes/);
  });
});
