// The run behind `berth gc`: passes of gc.batch items until nothing due is left, one bounded pass
// with a limit, and a dry run that judges everything due at once. In-process, on a moved clock.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { blobKey } from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { runGc, type GcRunOptions } from '../../server/registry/gc/run.js';
import { BlobNotFoundError } from '../../storage-drivers/blob/types.js';
import { randomBlob, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

describe("berth gc's run", () => {
  const clock = { now: Date.now() };
  let reg: TestRegistry;
  let c: RegistryClient;
  before(async () => {
    reg = await startTestRegistry({
      config: { gc: { enabled: false, delaySeconds: 0, quarantineSeconds: 0, batch: 2 } },
      deps: { now: () => clock.now },
    });
    c = new RegistryClient(reg.url);
  });
  after(async () => reg?.close());

  const options = (extra: Partial<GcRunOptions> = {}): GcRunOptions => ({ dryRun: false, limit: undefined, batch: 2, now: () => clock.now, ...extra });

  async function stored(b: Blob): Promise<boolean> {
    try {
      await reg.driver.stat(blobKey(parseDigest(b.digest)));
      return true;
    } catch (err) {
      if (err instanceof BlobNotFoundError) return false;
      throw err;
    }
  }

  async function orphans(repo: string, count: number): Promise<Blob[]> {
    const blobs = Array.from({ length: count }, () => randomBlob(700));
    for (const b of blobs) await c.pushBlob(repo, b);
    clock.now += 1000;
    return blobs;
  }

  it('a dry run judges everything due in one pass, whatever the batch, and changes nothing', async () => {
    const blobs = await orphans('run/dry', 5);
    const dry = await runGc(reg.app.gc, reg.metadata, options({ dryRun: true }));
    assert.equal(dry.passes, 1);
    assert.equal(dry.examined, 5);
    assert.equal(dry.blobsQuarantined, 5);
    assert.equal(dry.remaining, 5, 'still due');
    for (const b of blobs) assert.equal(await stored(b), true);
  });

  it('--limit runs one pass over at most that many items', async () => {
    const one = await runGc(reg.app.gc, reg.metadata, options({ limit: 3 }));
    assert.equal(one.passes, 1);
    assert.equal(one.examined, 3);
    assert.equal(one.remaining, 2);
  });

  it('without a limit, passes of a batch each run until nothing due is left, with the totals summed', async () => {
    const more = await orphans('run/more', 3);
    const progress: number[] = [];
    const all = await runGc(reg.app.gc, reg.metadata, options({ progressEveryMs: 0, onProgress: (t) => progress.push(t.examined) }));
    assert.equal(all.remaining, 0);
    assert.equal(all.examined, 5, 'the two left by --limit and the three new ones');
    assert.equal(all.passes, 3, 'batches of two');
    assert.equal(all.blobsDeleted, 5);
    assert.equal(all.bytesFreed, 5 * 700);
    assert.ok(progress.length >= 3 && progress.every((n, i) => i === 0 || n >= (progress[i - 1] ?? 0)), `progress ${progress.join(',')}`);
    for (const b of more) assert.equal(await stored(b), false);
    const idle = await runGc(reg.app.gc, reg.metadata, options());
    assert.deepEqual([idle.passes, idle.examined], [1, 0]);
  });

  it('stops after the item at hand when its signal is aborted', async () => {
    await orphans('run/stop', 4);
    const stop = new AbortController();
    const stopped = await runGc(reg.app.gc, reg.metadata, options({ signal: stop.signal, onAction: () => stop.abort() }));
    assert.equal(stopped.passes, 1);
    assert.ok(stopped.remaining >= 1, JSON.stringify(stopped));
    assert.ok(stopped.examined < 4);
  });
});
