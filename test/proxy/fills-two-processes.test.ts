// Two real processes (this one and test/helpers/fill-peer.ts) over one filesystem root and one Redis,
// both missing one 64 MiB blob served slowly by a local HTTP upstream that counts its GETs and holds
// its second half until the other process has joined.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { redisConfigSchema } from '../../storage-drivers/metadata/redis-config.js';
import { RedisStore } from '../../storage-drivers/metadata/redis.js';
import { blobKey, FILLS_ROOT } from '../../server/registry/keys.js';
import { BlobFills } from '../../server/registry/proxy/fills.js';
import { parseDigest } from '../../server/registry/references.js';
import { drainHashing, httpSource, type FillPeerJob, type FillPeerResult } from '../helpers/fill-peer.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

const MiB = 1024 * 1024;
const content = randomBytes(64 * MiB);
const digest = parseDigest(`sha256:${createHash('sha256').update(content).digest('hex')}`);

let scratch: ScratchDir;
let redis: RedisServer;
let upstream: Server;
let gets = 0;
/** The upstream holds its second half until the peer's requests have joined the fill. */
let peerJoined = false;

before(async () => {
  scratch = await makeScratchDir('fills-2p');
  redis = await startRedisServer();
  // 256 KiB every 2 ms: the fetch takes about half a second, long enough for the other process to join.
  upstream = createServer((req, res) => {
    gets++;
    res.writeHead(200, { 'content-length': content.length, 'content-type': 'application/octet-stream' });
    let offset = 0;
    const send = (): void => {
      if (offset >= content.length) {
        res.end();
        return;
      }
      if (offset >= content.length / 2 && !peerJoined) {
        setTimeout(send, 5);
        return;
      }
      res.write(content.subarray(offset, offset + 256 * 1024));
      offset += 256 * 1024;
      setTimeout(send, 2);
    };
    send();
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
});

after(async () => {
  upstream.close();
  await redis.stop();
  await scratch.remove();
});

it('feeds requests in two real processes from one upstream GET', async () => {
  const root = join(scratch.path, 'storage');
  const keyPrefix = `fills2p-${randomBytes(4).toString('hex')}:`;
  const sourceUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/blob`;
  const job: FillPeerJob = { root, redisUrl: redis.url, keyPrefix, digest: digest.value, size: content.length, sourceUrl, count: 10, chunkBytes: 8 * MiB };
  const driver = new FilesystemDriver({ root });
  const metadata = new RedisStore(redisConfigSchema.parse({ url: redis.url, keyPrefix }));
  assert.equal(await metadata.waitUntilReady(5000), true);
  const fills = new BlobFills(driver, metadata, { chunkBytes: 8 * MiB, pollMs: { min: 5, max: 50 } });
  try {
    const here = Array.from({ length: 10 }, async () => drainHashing((await fills.serve(digest, content.length, httpSource(sourceUrl))).stream));
    // The peer starts while this process's fetch runs: it must join it, not fetch again.
    const deadline = Date.now() + 30_000;
    while (gets === 0) {
      assert.ok(Date.now() < deadline, 'the upstream was never asked');
      await sleep(5);
    }
    const peerScript = fileURLToPath(new URL('../helpers/fill-peer.js', import.meta.url));
    const peer = spawn(process.execPath, [peerScript, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    peer.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('joined ') && out.includes('\n')) peerJoined = true;
    });
    peer.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(peer, 'exit')) as [number | null];
    assert.equal(code, 0, `peer failed: ${err}`);
    const [joined, reported] = out.trim().split('\n') as [string, string];
    assert.deepEqual(JSON.parse(joined.slice('joined '.length)), Array(10).fill('fill'), 'the peer joined the running fill');
    const there = JSON.parse(reported) as FillPeerResult[];
    const results = [...(await Promise.all(here)), ...there];
    assert.equal(results.length, 20);
    for (const [i, r] of results.entries()) {
      assert.equal(r.error, undefined, `request ${i}: ${r.error}`);
      assert.equal(r.digest, digest.value, `request ${i}`);
    }
    assert.equal(gets, 1, 'one upstream GET for both processes');
    assert.equal((await driver.stat(blobKey(digest))).size, content.length);
    const deadlineSettle = Date.now() + 30_000;
    while (fills.running > 0) {
      assert.ok(Date.now() < deadlineSettle);
      await sleep(5);
    }
    const left: string[] = [];
    for await (const key of driver.list(FILLS_ROOT)) left.push(key);
    assert.deepEqual(left, []);
  } finally {
    await metadata.close();
    await driver.close();
  }
});
