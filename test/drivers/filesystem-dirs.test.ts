// A directory the filesystem driver creates is only as durable as its entry in its parent: put(),
// writers and commits return after those entries are synced too, and a concurrent request that
// finds the directories already made waits for the syncs still in flight.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';

/** The real driver, recording each directory sync; a sync of `hold` waits until released. */
class RecordingDriver extends FilesystemDriver {
  synced: string[] = [];
  hold: string | undefined;
  private release: (() => void) | undefined;
  private held: Promise<void> | undefined;

  override async syncDir(dir: string): Promise<void> {
    if (dir === this.hold) {
      this.held ??= new Promise<void>((resolve) => (this.release = resolve));
      await this.held;
    }
    this.synced.push(dir);
    return super.syncDir(dir);
  }

  isHolding(): boolean {
    return this.held !== undefined;
  }

  releaseHeld(): void {
    this.release?.();
  }
}

describe('filesystem driver: new directories are synced into their parents', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-fs-dirs-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('syncs the parent of every directory it creates, and only the leaf once they exist', async () => {
    const driver = new RecordingDriver({ root: join(root, 'one') });
    await driver.put('a/b/c/first', Buffer.from('x'));
    const base = join(root, 'one');
    for (const dir of [base, join(base, 'a'), join(base, 'a', 'b'), join(base, 'a', 'b', 'c')]) {
      assert.ok(driver.synced.includes(dir), `no sync of ${dir}: ${driver.synced.join(', ')}`);
    }
    driver.synced = [];
    await driver.put('a/b/c/second', Buffer.from('y'));
    assert.deepEqual(driver.synced, [join(base, 'a', 'b', 'c')]);
  });

  it('a concurrent put into the directories another put is creating waits for their syncs', async () => {
    const base = join(root, 'two');
    const driver = new RecordingDriver({ root: base });
    await driver.put('seed', Buffer.from('s'));
    // The entry of the new directory `x` lives in `base`: hold that sync.
    driver.hold = base;
    const settled: string[] = [];
    const first = driver.put('x/y/one', Buffer.from('1')).then(() => settled.push('one'));
    const second = driver.put('x/y/two', Buffer.from('2')).then(() => settled.push('two'));
    // A negative check: wait until the held sync is asked for, then give both puts time to finish
    // writing (a put that skipped the wait returns within a few ms; with it removed this fails).
    for (let turns = 0; !driver.isHolding(); turns++) {
      assert.ok(turns < 100_000, 'the parent sync was never asked for');
      await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(settled, []);
    driver.releaseHeld();
    await Promise.all([first, second]);
    assert.deepEqual(settled.sort(), ['one', 'two']);
    assert.ok(driver.synced.includes(base));
  });
});
