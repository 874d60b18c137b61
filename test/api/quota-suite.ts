// Storage quotas over HTTP, run per metadata store (quotas-embedded.test.ts, quotas-redis.test.ts).
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { rebuildMetadata } from '../../server/registry/rebuild.js';
import { blob, imageManifest, randomBlob, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry, type TestRegistryOptions } from '../helpers/registry.js';

const KiB = 1024;
const MiB = 1024 * KiB;

interface ErrorBody {
  errors: Array<{ code: string; message: string }>;
}

interface Report {
  namespace: string;
  rule?: string;
  limitBytes?: number;
  usedBytes: number;
  digests: number;
  reservedBytes: number;
  exclusiveBytes: number;
  sharedBytes: number;
}

/** A PATCH streamed in 64 KiB writes, stopping as soon as the server answers; what was sent and the answer. */
function streamPatch(url: string, total: number): Promise<{ status: number; body: string; sent: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } });
    let sent = 0;
    let answered = false;
    const chunk = Buffer.alloc(64 * KiB, 7);
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sent }));
    });
    // The server ends the exchange mid-body: the socket closing under the writes is expected.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const pump = () => {
      while (!answered && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered) req.end();
    };
    pump();
  });
}

export function runQuotaSuite(title: string, options: () => Promise<TestRegistryOptions>): void {
  describe(`storage quotas: ${title}`, () => {
    let reg: TestRegistry;
    let client: RegistryClient;
    before(async () => {
      const base = await options();
      reg = await startTestRegistry({
        ...base,
        config: {
          gc: { enabled: false, delaySeconds: 0, quarantineSeconds: 0 },
          quotas: {
            reserveStepBytes: 64 * KiB,
            rules: [
              { namespace: 'full', limitBytes: 1000 },
              { namespace: 'stream', limitBytes: '1MiB' },
              { namespace: 'small', limitBytes: 4 * KiB },
              { namespace: 'race', limitBytes: '1MiB' },
              { namespace: 'mf', limitBytes: 3000 },
              { namespace: 'team-*', limitBytes: '10GiB' },
            ],
          },
        },
      });
      client = new RegistryClient(reg.url);
    });
    after(async () => reg?.close());

    async function report(ns: string): Promise<Report> {
      const res = await fetch(`${reg.url}/api/v1/quotas?namespace=${ns}`);
      assert.equal(res.status, 200);
      return (await res.json()) as Report;
    }

    async function refusal(res: Response): Promise<string> {
      assert.equal(res.status, 403);
      const body = (await res.json()) as ErrorBody;
      assert.equal(body.errors[0]?.code, 'DENIED');
      return body.errors[0]?.message ?? '';
    }

    it('refuses an upload start once the namespace is at its limit, naming namespace, usage, limit and rule', async () => {
      await client.pushBlob('full/app', randomBlob(1000));
      const res = await client.fetch('/v2/full/app/blobs/uploads/', { method: 'POST' });
      assert.equal(await refusal(res), 'namespace full is over its storage quota: 1000 B used of 1000 B (rule full); delete images or ask an administrator');
      assert.deepEqual({ used: (await report('full')).usedBytes, limit: (await report('full')).limitBytes }, { used: 1000, limit: 1000 });
    });

    it('stops a streamed upload as it crosses the limit, ends its session and frees its bytes', async () => {
      const start = await client.fetch('/v2/stream/app/blobs/uploads/', { method: 'POST' });
      assert.equal(start.status, 202);
      const location = start.headers.get('location') ?? '';
      const total = 64 * MiB;
      const answer = await streamPatch(`${reg.url}${location}`, total);
      assert.equal(answer.status, 403, answer.body);
      assert.match(answer.body, /namespace stream is over its storage quota: .* used of 1 MiB .*\(rule stream\); this upload needs/);
      assert.ok(answer.sent < total / 2, `the upload was not stopped early: ${answer.sent} of ${total} bytes sent`);
      const status = await client.fetch(location);
      assert.equal(status.status, 404, 'the session is gone');
      const after = await report('stream');
      assert.deepEqual({ used: after.usedBytes, reserved: after.reservedBytes }, { used: 0, reserved: 0 });
      // The namespace has room again for what fits.
      await client.pushBlob('stream/app', randomBlob(512 * KiB));
    });

    it('counts a blob once per namespace: a second repository costs nothing, another namespace pays again', async () => {
      const layer = randomBlob(3000);
      await client.pushBlob('team-a/one', layer);
      const first = await report('team-a');
      await client.pushBlob('team-a/two', layer);
      const mount = await client.fetch(`/v2/team-a/three/blobs/uploads/?mount=${layer.digest}&from=team-a/one`, { method: 'POST' });
      assert.equal(mount.status, 201);
      const second = await report('team-a');
      assert.equal(second.usedBytes, first.usedBytes);
      assert.equal(second.digests, first.digests);
      await client.pushBlob('team-b/one', layer);
      const other = await report('team-b');
      assert.equal(other.usedBytes, 3000);
      // Both namespaces now hold it: it is shared, freed in neither by deleting the other.
      assert.equal((await report('team-a')).sharedBytes, 3000);
      assert.equal(other.sharedBytes, 3000);
      assert.equal(other.exclusiveBytes, 0);
    });

    it('refuses a mount into a full namespace and links nothing', async () => {
      const big = randomBlob(5 * KiB);
      await client.pushBlob('source/app', big);
      await client.pushBlob('small/app', randomBlob(2 * KiB));
      const res = await client.fetch(`/v2/small/app/blobs/uploads/?mount=${big.digest}&from=source/app`, { method: 'POST' });
      assert.match(await refusal(res), /^namespace small is over its storage quota: 2 KiB used of 4 KiB \(rule small\); this blob needs 5 KiB more/);
      assert.equal((await client.fetch(`/v2/small/app/blobs/${big.digest}`, { method: 'HEAD' })).status, 404);
      assert.equal((await report('small')).usedBytes, 2 * KiB);
    });

    it('lets concurrent uploads together fill the namespace but stops the ones that would pass it', async () => {
      const blobs = Array.from({ length: 5 }, () => randomBlob(300 * KiB));
      const results = await Promise.all(
        blobs.map(async (b) => {
          const res = await client.fetch(`/v2/race/app/blobs/uploads/?digest=${b.digest}`, {
            method: 'POST',
            body: b.data,
            headers: { 'Content-Type': 'application/octet-stream' },
          });
          await res.arrayBuffer();
          return res.status;
        }),
      );
      const pushed = results.filter((s) => s === 201).length;
      assert.ok(
        results.every((s) => s === 201 || s === 403),
        JSON.stringify(results),
      );
      assert.ok(pushed >= 1 && pushed <= 3, `${pushed} of 5 uploads of 300 KiB fit in 1 MiB: ${JSON.stringify(results)}`);
      const after = await report('race');
      assert.equal(after.usedBytes, pushed * 300 * KiB);
      assert.ok(after.usedBytes <= MiB);
      assert.equal(after.reservedBytes, 0);
    });

    it('refuses a manifest PUT whose own bytes do not fit', async () => {
      const config = blob('{"architecture":"amd64","os":"linux"}');
      const layer = randomBlob(3000 - config.size - 10);
      for (const b of [config, layer]) await client.pushBlob('mf/app', b);
      const manifest = imageManifest(config, [layer]);
      const res = await client.fetch('/v2/mf/app/manifests/v1', {
        method: 'PUT',
        body: manifest.data,
        headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.match(await refusal(res), /^namespace mf is over its storage quota: .*\(rule mf\); this manifest needs/);
      assert.equal((await client.fetch('/v2/mf/app/manifests/v1', { method: 'HEAD' })).status, 404);
    });

    it('frees the bytes once the image is deleted and garbage collection removed its links', async () => {
      const { manifest, config, layers } = await client.pushImage('team-gc/app', 'v1', [4000]);
      const pushed = await report('team-gc');
      assert.equal(pushed.usedBytes, manifest.size + config.size + (layers[0] as Blob).size);
      assert.equal(pushed.exclusiveBytes, pushed.usedBytes);
      assert.equal((await client.fetch(`/v2/team-gc/app/manifests/${manifest.digest}`, { method: 'DELETE' })).status, 202);
      assert.equal((await report('team-gc')).usedBytes, config.size + (layers[0] as Blob).size, 'the manifest goes at once, its blobs after GC');
      await reg.app.gc.pass();
      assert.equal((await report('team-gc')).usedBytes, 0);
    });

    it('rebuild recounts the namespace records from the links', async () => {
      const { manifest, config, layers } = await client.pushImage('team-rb/app', 'v1', [2000]);
      await client.pushBlob('team-rb/other', layers[0] as Blob);
      const want = manifest.size + config.size + (layers[0] as Blob).size;
      assert.equal((await report('team-rb')).usedBytes, want);
      // Counters lost or wrong (a crash's over-count): rebuild puts them right.
      await reg.storage.store.quotas.replace('team-rb', [{ digest: 'sha256:' + 'f'.repeat(64), size: 999_999, holders: ['b team-rb/gone'] }]);
      await rebuildMetadata(reg.storage.driver, reg.storage.store);
      const rebuilt = await report('team-rb');
      assert.deepEqual({ used: rebuilt.usedBytes, digests: rebuilt.digests }, { used: want, digests: 3 });
      // Still counted once, with both holders: unlinking one repository's copy frees nothing.
      assert.equal((await client.fetch(`/v2/team-rb/other/blobs/${(layers[0] as Blob).digest}`, { method: 'DELETE' })).status, 202);
      assert.equal((await report('team-rb')).usedBytes, want);
    });

    it('lists every namespace with a rule or usage, a page at a time', async () => {
      const res = await fetch(`${reg.url}/api/v1/quotas?n=2`);
      assert.equal(res.status, 200);
      const page = (await res.json()) as { namespaces: Report[]; next?: string };
      assert.equal(page.namespaces.length, 2);
      assert.ok(page.next !== undefined);
      const all: Report[] = [];
      let last: string | undefined;
      for (;;) {
        const body = (await (await fetch(`${reg.url}/api/v1/quotas?n=3${last ? `&last=${last}` : ''}`)).json()) as { namespaces: Report[]; next?: string };
        all.push(...body.namespaces);
        if (body.next === undefined) break;
        last = body.next;
      }
      const names = all.map((r) => r.namespace);
      for (const ns of ['full', 'race', 'source', 'stream', 'team-a', 'team-b']) assert.ok(names.includes(ns), `${ns} missing from ${names.join(', ')}`);
      assert.equal(all.find((r) => r.namespace === 'full')?.rule, 'full');
      assert.equal(all.find((r) => r.namespace === 'source')?.rule, undefined);
      assert.deepEqual([...names].sort(), names);
    });
  });
}
