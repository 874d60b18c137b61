import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { BandwidthLimit } from '../../server/registry/replication/throttle.js';

async function drain(stream: Readable): Promise<number> {
  let bytes = 0;
  for await (const piece of stream) bytes += (piece as Buffer).length;
  return bytes;
}

describe('replication bandwidth cap', () => {
  it('lets two streams together through no faster than the cap, and every byte arrives', async () => {
    const limit = new BandwidthLimit(4 * 1024 * 1024);
    const piece = Buffer.alloc(64 * 1024, 7);
    const source = () => Readable.from(Array.from({ length: 16 }, () => piece));
    const started = performance.now();
    const [one, two] = await Promise.all([drain(limit.wrap(source())), drain(limit.wrap(source()))]);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(one + two, 2 * 1024 * 1024);
    // 2 MiB at 4 MiB/s, less the first burst (1 MiB): at least 0.25 s. A slower machine only takes longer.
    assert.ok(seconds >= 0.24, `2 MiB passed in ${seconds.toFixed(3)} s`);
  });

  it("passes a source's error on and stops reading it when the reader goes away", async () => {
    const limit = new BandwidthLimit(1024 * 1024 * 1024);
    const failing = new Readable({
      read() {
        this.destroy(new Error('connection reset'));
      },
    });
    await assert.rejects(drain(limit.wrap(failing)), /connection reset/);
    const endless = new Readable({
      read() {
        this.push(Buffer.alloc(1024));
      },
    });
    const wrapped = limit.wrap(endless);
    for await (const _ of wrapped) break;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(endless.destroyed, true);
  });
});
