import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SyncCoalescer } from '../../storage-drivers/blob/sync-coalescer.js';

/** A sync whose end the test decides; records the order in which syncs and callers start and end. */
class ControlledSyncs {
  readonly log: string[] = [];
  private readonly ends: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private started = 0;

  readonly syncOnce = (target: string): Promise<void> => {
    const n = ++this.started;
    this.log.push(`start ${n} ${target}`);
    return new Promise<void>((resolve, reject) => {
      this.ends[n] = {
        resolve: () => {
          this.log.push(`end ${n}`);
          resolve();
        },
        reject: (err) => {
          this.log.push(`fail ${n}`);
          reject(err);
        },
      };
    });
  };

  get count(): number {
    return this.started;
  }

  finish(n: number): void {
    this.ends[n]?.resolve();
  }

  fail(n: number, err: Error): void {
    this.ends[n]?.reject(err);
  }
}

/** Lets every pending promise callback run (the coalescer chains a few). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function track(log: string[], name: string, ask: () => Promise<void>): Promise<void> {
  log.push(`ask ${name}`);
  return ask().then(
    () => void log.push(`ok ${name}`),
    (err: Error) => void log.push(`rejected ${name}: ${err.message}`),
  );
}

describe('SyncCoalescer', () => {
  it('shares one sync among the callers that arrived while the previous one ran', async () => {
    const syncs = new ControlledSyncs();
    const coalescer = new SyncCoalescer(syncs.syncOnce);
    const first = track(syncs.log, 'a', () => coalescer.sync('/d'));
    // Arrived while sync 1 runs: it may have started before their renames, so they wait for sync 2.
    const rest = Array.from({ length: 20 }, (_, i) => track(syncs.log, `b${i}`, () => coalescer.sync('/d')));
    await settle();
    assert.equal(syncs.count, 1);
    assert.ok(!syncs.log.some((l) => l.startsWith('ok')), 'nobody resolves before a sync ends');
    syncs.finish(1);
    await first;
    await settle();
    assert.equal(syncs.count, 2, 'the 20 waiting callers share the second sync');
    assert.ok(!syncs.log.some((l) => l.startsWith('ok b')), 'sync 1 began before they asked: it does not cover them');
    syncs.finish(2);
    await Promise.all(rest);
    assert.equal(syncs.count, 2);
    // Every caller resolved after the end of a sync that started after it asked.
    for (const [i, line] of syncs.log.entries()) {
      if (!line.startsWith('ok ')) continue;
      const name = line.slice(3);
      const asked = syncs.log.indexOf(`ask ${name}`);
      const coveringStart = syncs.log.findIndex((l, j) => j > asked && l.startsWith('start '));
      const n = syncs.log[coveringStart]?.split(' ')[1];
      const end = syncs.log.indexOf(`end ${n}`);
      assert.ok(coveringStart > asked && end > coveringStart && end < i, `${name}: ${syncs.log.join(', ')}`);
    }
    assert.equal(coalescer.active, 0);
  });

  it('lets a caller ride on a sync that has not started yet', async () => {
    const syncs = new ControlledSyncs();
    const coalescer = new SyncCoalescer(syncs.syncOnce);
    const a = coalescer.sync('/d');
    const b = coalescer.sync('/d');
    syncs.finish(1);
    await a;
    await settle();
    // Sync 2 (for b) is running: c and d, asking now, are both covered by sync 3, which starts after it.
    const c = coalescer.sync('/d');
    const d = coalescer.sync('/d');
    await settle();
    assert.equal(syncs.count, 2);
    syncs.finish(2);
    await b;
    await settle();
    assert.equal(syncs.count, 3);
    syncs.finish(3);
    await Promise.all([c, d]);
    assert.equal(syncs.count, 3);
    assert.equal(coalescer.active, 0);
  });

  it('syncs different targets independently', async () => {
    const syncs = new ControlledSyncs();
    const coalescer = new SyncCoalescer(syncs.syncOnce);
    const x = coalescer.sync('/x');
    const y = coalescer.sync('/y');
    await settle();
    assert.deepEqual(syncs.log, ['start 1 /x', 'start 2 /y']);
    syncs.finish(2);
    await y;
    syncs.finish(1);
    await x;
  });

  it('rejects exactly the callers a failing sync covered', async () => {
    const syncs = new ControlledSyncs();
    const coalescer = new SyncCoalescer(syncs.syncOnce);
    const log: string[] = [];
    const a = track(log, 'a', () => coalescer.sync('/d'));
    const b = track(log, 'b', () => coalescer.sync('/d'));
    const c = track(log, 'c', () => coalescer.sync('/d'));
    syncs.finish(1);
    await a;
    await settle();
    syncs.fail(2, new Error('EIO'));
    await Promise.all([b, c]);
    const d = track(log, 'd', () => coalescer.sync('/d'));
    await settle();
    syncs.finish(3);
    await d;
    assert.deepEqual(
      log.filter((l) => !l.startsWith('ask')),
      ['ok a', 'rejected b: EIO', 'rejected c: EIO', 'ok d'],
    );
    assert.equal(coalescer.active, 0);
  });

  it('rejects the callers of a sync that throws instead of returning a promise', async () => {
    const coalescer = new SyncCoalescer(() => {
      throw new Error('EBADF');
    });
    await assert.rejects(coalescer.sync('/d'), /EBADF/);
    assert.equal(coalescer.active, 0);
  });
});
