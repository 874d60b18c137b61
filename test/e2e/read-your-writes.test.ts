import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBerthProcess, type BerthProcess } from '../helpers/berth-process.js';
import { blob, imageManifest, RegistryClient } from '../helpers/oci.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

const ROUNDS = 1000;
/** Concurrent readers keeping the reading process busy, as other clients would. */
const LOAD_CONNECTIONS = 8;

/**
 * Two `berth serve` processes over one embedded store (what `http.workers: 2` runs): whatever one
 * acknowledged, the other's next request must see. lmdb keeps a read snapshot until a timer resets it,
 * so under load a process answered from a snapshot older than the other's commit.
 */
describe('read-your-writes across two processes on one embedded store', () => {
  let scratch: ScratchDir;
  let writer: BerthProcess;
  let reader: BerthProcess;
  let stopLoad: () => Promise<void> = async () => {};

  before(async () => {
    scratch = await makeScratchDir('ryw');
    const config = { log: { level: 'info', access: false } };
    writer = await startBerthProcess({ dataDir: scratch.path, config });
    reader = await startBerthProcess({ dataDir: scratch.path, config });
  });
  after(async () => {
    await stopLoad();
    await Promise.all([writer?.stop(), reader?.stop()]);
    await scratch?.remove();
  });

  /** Keeps `LOAD_CONNECTIONS` request loops running against the reader until stopped. */
  async function startLoad(c: RegistryClient, paths: string[]): Promise<void> {
    let running = true;
    let errors = 0;
    const loops = Array.from({ length: LOAD_CONNECTIONS }, async (_, i) => {
      for (let n = i; running; n++) {
        const res = await c.fetch(paths[n % paths.length] as string, { method: n % 2 === 0 ? 'HEAD' : 'GET' });
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
      }
    });
    stopLoad = async () => {
      running = false;
      await Promise.all(loops);
      stopLoad = async () => {};
      assert.equal(errors, 0, 'the background load saw errors');
    };
  }

  it(`a blob and a tag acknowledged by one process are seen by the other's next request (${ROUNDS} rounds, under load)`, async () => {
    const a = new RegistryClient(writer.url);
    const b = new RegistryClient(reader.url);
    const base = await a.pushImage('ryw/base', 'v1', [256]);
    await startLoad(b, ['/v2/ryw/base/manifests/v1', `/v2/ryw/base/blobs/${base.layers[0]!.digest}`, `/v2/ryw/base/blobs/${base.config.digest}`]);

    let blobMisses = 0;
    let tagMisses = 0;
    const config = blob('{}');
    await a.pushBlob('ryw/app', config);
    for (let i = 0; i < ROUNDS; i++) {
      const layer = blob(`layer ${i} ${Math.random()}`);
      await a.pushBlob('ryw/app', layer);
      const head = await b.fetch(`/v2/ryw/app/blobs/${layer.digest}`, { method: 'HEAD' });
      if (head.status !== 200) blobMisses++;
      if (i % 4 === 0) {
        const manifest = imageManifest(config, [layer]);
        await a.pushManifest('ryw/app', `t${i}`, manifest);
        const got = await b.fetch(`/v2/ryw/app/manifests/t${i}`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
        if (got.status !== 200 || got.headers.get('docker-content-digest') !== manifest.digest) tagMisses++;
      }
    }
    await stopLoad();
    assert.deepEqual({ blobMisses, tagMisses }, { blobMisses: 0, tagMisses: 0 });
  });
});
