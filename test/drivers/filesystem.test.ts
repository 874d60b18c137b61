import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { link, mkdir, readdir, readFile, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { runBlobDriverContract } from '../contract/blob-driver.contract.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { instrument } from '../../storage-drivers/blob/instrumented.js';
import {
  BlobNotFoundError,
  InProgressLostError,
  InvalidKeyError,
  StorageUnavailableError,
  type BlobDriver,
  type WriterCheckpoint,
} from '../../storage-drivers/blob/types.js';

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name)));
}

runBlobDriverContract('filesystem', async () => {
  const scratch = await makeScratchDir('fs-contract');
  const root = join(scratch.path, 'root');
  const driver = new FilesystemDriver({ root });
  const peer = new FilesystemDriver({ root });
  return {
    driver,
    peer,
    rawKeys: () => filesUnder(root),
    cleanup: async () => {
      await driver.close();
      await peer.close();
      await scratch.remove();
    },
  };
});

describe('FilesystemDriver', () => {
  let scratch: ScratchDir;
  let root: string;
  let driver: FilesystemDriver;
  before(async () => {
    scratch = await makeScratchDir('fs-driver');
    root = join(scratch.path, 'root');
    driver = new FilesystemDriver({ root });
  });
  after(async () => {
    await driver.close();
    await scratch.remove();
  });

  it('stores a committed object at <root>/<key> and in-progress data elsewhere', async () => {
    const writer = await driver.writer('layout/blob', {});
    await writer.write(textSource('abc'));
    const checkpoint = await writer.close();
    await assert.rejects(stat(join(root, 'layout', 'blob')));
    const resumed = await driver.writer('layout/blob', { resume: checkpoint });
    await resumed.commit();
    assert.equal(await readFile(join(root, 'layout', 'blob'), 'utf8'), 'abc');
    await driver.put('layout/small', Buffer.from('s'));
    assert.deepEqual((await filesUnder(root)).sort(), ['layout/blob', 'layout/small']);
    await driver.delete('layout');
  });

  it('says how much of a checkpoint a shorter file still holds (an unsynced tail lost), and nothing for a missing one', async () => {
    const writer = await driver.writer('tail/blob', {});
    await writer.write(textSource('abcdef'));
    const checkpoint = await writer.close();
    assert.equal(checkpoint.size, 6);
    const data = join(driver.inProgressDir('tail/blob'), '@data');
    await truncate(data, 2);
    assert.equal(await driver.inProgressSize('tail/blob'), 2);
    await assert.rejects(driver.writer('tail/blob', { resume: checkpoint }), (err: unknown) => err instanceof InProgressLostError && err.held === 2);
    const resumed = await driver.writer('tail/blob', { resume: { size: 2 } });
    await resumed.write(textSource('XY'));
    await resumed.commit();
    assert.equal(await readFile(join(root, 'tail', 'blob'), 'utf8'), 'abXY');
    assert.equal(await driver.inProgressSize('tail/blob'), undefined);
    await assert.rejects(driver.writer('tail/blob', { resume: checkpoint }), (err: unknown) => err instanceof InProgressLostError && err.held === undefined);
    await driver.delete('tail');
  });

  it('close() waits for a write still settling, so its checkpoint counts every byte that write stored', async () => {
    const writer = await driver.writer('settling/blob', {});
    const src = new PassThrough();
    // The caller gives up on the write (an upload whose request body failed first) and closes at once.
    const writing = writer.write(src).catch(() => undefined);
    src.end(Buffer.alloc(1000, 7));
    const checkpoint = await writer.close();
    await writing;
    assert.equal(checkpoint.size, 1000);
    assert.equal(await driver.inProgressSize('settling/blob'), 1000);
    await driver.delete('settling');
  });

  it('does not write a kept object again: the file stays the one first written', async () => {
    const path = join(root, 'kept', 'manifest');
    await driver.put('kept/manifest', Buffer.from('{"a":1}'), { keep: 'same-size' });
    // A hard link holds the first file's inode, so a replaced file cannot get the same number back.
    await link(path, join(scratch.path, 'kept-probe'));
    const first = await stat(path);
    await driver.put('kept/manifest', Buffer.from('{"a":1}'), { keep: 'same-size' });
    await driver.put('kept/manifest', Buffer.from('{"a":1}'), { keep: 'same-bytes' });
    assert.equal((await stat(path)).ino, first.ino, 'kept: no new file renamed over it');
    await driver.put('kept/manifest', Buffer.from('{"a":1}'));
    assert.notEqual((await stat(path)).ino, first.ino, 'a plain put() writes a new file');
    assert.deepEqual(await filesUnder(join(root, '@tmp')), []);
    await driver.delete('kept');
  });

  it('hides the data of a writer whose process was killed mid-write, and resumes from the last checkpoint', { timeout: 30_000 }, async () => {
    const chunk = 64 * 1024;
    const closed = 1024 * 1024;
    const before = 4 * 1024 * 1024;
    const moduleUrl = new URL('../../storage-drivers/blob/filesystem.js', import.meta.url).href;
    // The child writes and closes `closed` bytes (printing the checkpoint, as an upload session would
    // store it), resumes, writes up to `before` bytes, says so, then waits for more data that never comes.
    const script = `
      import { PassThrough, Readable } from 'node:stream';
      const { FilesystemDriver } = await import(${JSON.stringify(moduleUrl)});
      const driver = new FilesystemDriver({ root: ${JSON.stringify(root)} });
      let sent = 0;
      const upTo = (limit) => new Readable({
        read() {
          if (sent < limit) {
            this.push(Buffer.alloc(${chunk}, (sent / ${chunk}) % 251));
            sent += ${chunk};
          } else if (limit === ${closed}) this.push(null);
        },
      });
      const first = await driver.writer('crash/upload', {});
      await first.write(upTo(${closed}));
      const checkpoint = await first.close();
      process.stdout.write('checkpoint ' + JSON.stringify(checkpoint) + '\\n');
      const writer = await driver.writer('crash/upload', { resume: checkpoint });
      writer.write(upTo(${before})).catch(() => {});
      const timer = setInterval(async () => {
        const { size } = await (await import('node:fs/promises')).stat(${JSON.stringify(join(root, '@inprogress', 'crash', 'upload', '@data'))});
        if (size === ${before}) { clearInterval(timer); process.stdout.write('ready\\n'); }
      }, 5);
      process.stdin.resume();
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.setEncoding('utf8');
    await new Promise<void>((ready, fail) => {
      child.stdout.on('data', (text: string) => {
        output += text;
        if (output.includes('ready')) ready();
      });
      child.once('exit', (code) => fail(new Error(`child exited early with ${code}`)));
    });
    child.kill('SIGKILL');
    await once(child, 'exit');
    const checkpoint = JSON.parse(/checkpoint (.*)\n/.exec(output)?.[1] ?? assert.fail(`no checkpoint in ${output}`)) as { size: number };
    assert.deepEqual(checkpoint, { size: closed });

    const fresh = new FilesystemDriver({ root });
    await assert.rejects(fresh.stat('crash/upload'), BlobNotFoundError);
    const listed: string[] = [];
    for await (const key of fresh.list('crash')) listed.push(key);
    assert.deepEqual(listed, []);
    assert.equal((await stat(join(root, '@inprogress', 'crash', 'upload', '@data'))).size, before, 'the killed write stored its bytes');

    // The bytes past the checkpoint were never acknowledged: the resumed writer drops them.
    const resumed = await fresh.writer('crash/upload', { resume: checkpoint });
    assert.equal(resumed.size, closed);
    await resumed.write(textSource('end'));
    await resumed.commit();
    const stored = await fresh.get('crash/upload');
    assert.equal(stored.length, closed + 3);
    for (let offset = 0; offset < closed; offset += chunk) assert.equal(stored[offset], (offset / chunk) % 251);
    assert.equal(stored.subarray(closed).toString(), 'end');
    await fresh.delete('crash');
    assert.deepEqual(await filesUnder(root), []);
  });

  it('lists only committed objects, not temporaries or foreign names', async () => {
    await driver.put('strays/kept', Buffer.from('k'));
    // What a crash could leave behind, and files no key can name.
    await mkdir(join(root, '@tmp'), { recursive: true });
    await writeFile(join(root, '@tmp', '0123.strays+half'), 'half');
    await mkdir(join(root, '@inprogress', 'strays', 'up'), { recursive: true });
    await writeFile(join(root, '@inprogress', 'strays', 'up', '@data'), 'partial');
    await writeFile(join(root, 'strays', 'has space'), 'x');
    await writeFile(join(root, 'strays', 'kept@tmp'), 'x');
    const keys: string[] = [];
    for await (const key of driver.list('strays')) keys.push(key);
    assert.deepEqual(keys, ['strays/kept']);
    await driver.delete('strays');
    assert.deepEqual(await filesUnder(root), ['@tmp/0123.strays+half']);
    await rm(join(root, '@tmp'), { recursive: true });
  });

  it('sweeps stale in-progress objects and put() temporaries, nothing else', async () => {
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 60 * 60 * 1000);
    const cutoff = new Date(Date.now() - 24 * 60 * 60 * 1000);
    await driver.put('sweep/committed', Buffer.from('kept'));
    await utimes(join(root, 'sweep', 'committed'), twoDaysAgo, twoDaysAgo);
    const checkpoints = new Map<string, WriterCheckpoint>();
    for (const key of ['sweep/stale', 'sweep/stale/nested', 'sweep/fresh', 'sweep/owned']) {
      const writer = await driver.writer(key, {});
      await writer.write(textSource(key));
      checkpoints.set(key, await writer.close());
      if (key !== 'sweep/fresh') await utimes(join(root, '@inprogress', ...key.split('/'), '@data'), twoDaysAgo, twoDaysAgo);
    }
    await writeFile(join(root, '@tmp', 'aaaa.stale+key'), 'left by a crash');
    await utimes(join(root, '@tmp', 'aaaa.stale+key'), twoDaysAgo, twoDaysAgo);
    await writeFile(join(root, '@tmp', 'bbbb.young+key'), 'being written elsewhere');

    // 'sweep/owned' is as stale, but an upload session still owns it.
    const asked: string[] = [];
    const isLive = async (key: string): Promise<boolean> => {
      asked.push(key);
      return key === 'sweep/owned';
    };
    assert.equal(await driver.sweep(cutoff, isLive), 3);
    assert.ok(asked.includes('sweep/owned'), `isLive asked about ${JSON.stringify(asked)}`);
    assert.deepEqual((await filesUnder(root)).sort(), [
      '@inprogress/sweep/fresh/@data',
      '@inprogress/sweep/owned/@data',
      '@tmp/bbbb.young+key',
      'sweep/committed',
    ]);
    for (const key of ['sweep/fresh', 'sweep/owned']) {
      const kept = await driver.writer(key, { resume: checkpoints.get(key) as WriterCheckpoint });
      assert.equal(kept.size, key.length);
      await kept.cancel();
    }
    for (const key of ['sweep/stale', 'sweep/stale/nested']) {
      await assert.rejects(driver.writer(key, { resume: checkpoints.get(key) as WriterCheckpoint }), InProgressLostError);
    }
    await driver.delete('sweep');
    await rm(join(root, '@tmp'), { recursive: true });
    assert.equal(await driver.sweep(new Date(), async () => false), 0, 'nothing to sweep is fine');
  });

  it('cannot be made to touch files outside its root', async () => {
    const outside = join(scratch.path, 'outside.txt');
    await writeFile(outside, 'precious');
    await writeFile(join(scratch.path, 'root-sibling'), 'also precious');
    const attempts: [string, (d: BlobDriver) => Promise<unknown>][] = [
      ['get', (d) => d.get('../outside.txt')],
      ['stat', (d) => d.stat('../outside.txt')],
      ['reader', (d) => d.reader('../outside.txt')],
      ['put', (d) => d.put('../outside.txt', Buffer.from('overwritten'))],
      ['writer', (d) => d.writer('../outside.txt', {})],
      ['move from', (d) => d.move('../outside.txt', 'stolen')],
      ['move to', (d) => d.move('stolen', '../outside.txt')],
      ['delete ..', (d) => d.delete('..')],
      ['delete sibling', (d) => d.delete('../root-sibling')],
      ['delete nested', (d) => d.delete('a/../../outside.txt')],
      ['delete absolute', (d) => d.delete(outside)],
      [
        'list',
        async (d) => {
          for await (const key of d.list('..')) void key;
        },
      ],
    ];
    // As every driver runs (behind instrument, see server/storage-stack.ts): each key is refused.
    const stacked = instrument(driver, () => undefined);
    for (const [what, attempt] of attempts) await assert.rejects(attempt(stacked), InvalidKeyError, what);
    await assert.rejects(stacked.deleteMany(['fine', '../outside.txt']), InvalidKeyError, 'deleteMany');
    // Used bare, its own check still keeps it inside its root: traversal is refused, and an absolute
    // key names a path under the root.
    for (const [what, attempt] of attempts) {
      if (what === 'delete absolute') await attempt(driver);
      else await assert.rejects(attempt(driver), InvalidKeyError, `bare ${what}`);
    }
    // deleteMany reports each refused key instead of throwing.
    const bare = await driver.deleteMany(['../outside.txt', 'a/../../root-sibling', outside]);
    assert.deepEqual(bare.deleted, [outside]);
    assert.deepEqual(
      bare.failed.map(({ key, error }) => [key, error.name]),
      [
        ['../outside.txt', 'InvalidKeyError'],
        ['a/../../root-sibling', 'InvalidKeyError'],
      ],
    );
    assert.equal(await readFile(outside, 'utf8'), 'precious');
    assert.equal(await readFile(join(scratch.path, 'root-sibling'), 'utf8'), 'also precious');
  });

  it('deleteMany reports a key the OS refuses in failed and deletes the others', async () => {
    await driver.put('dm/a', Buffer.from('a'));
    await driver.put('dm/b', Buffer.from('b'));
    // A symlink to itself: resolving a path through it fails with ELOOP, for root too.
    await symlink('loop', join(root, 'dm', 'loop'));
    const result = await driver.deleteMany(['dm/a', 'dm/loop/x', 'dm/b', 'dm/missing']);
    assert.deepEqual(result.deleted, ['dm/a', 'dm/b', 'dm/missing']);
    assert.deepEqual(
      result.failed.map(({ key, error }) => [key, (error as NodeJS.ErrnoException).code]),
      [['dm/loop/x', 'ELOOP']],
    );
    assert.deepEqual(await filesUnder(join(root, 'dm')), []);
    // Behind instrument (as every driver runs), the OS error reaches the caller as a storage failure.
    const mapped = await instrument(driver, () => undefined).deleteMany(['dm/loop/x']);
    assert.equal(mapped.failed[0]?.error.name, 'StorageUnavailableError');
    assert.equal((mapped.failed[0]?.error.cause as NodeJS.ErrnoException).code, 'ELOOP');
    await rm(join(root, 'dm'), { recursive: true });
  });

  it('reports an unusable root through ping()', async () => {
    const file = join(scratch.path, 'not-a-dir');
    await writeFile(file, '');
    const broken = new FilesystemDriver({ root: join(file, 'root') });
    await assert.rejects(broken.ping(), StorageUnavailableError);
    await driver.ping();
  });
});

function textSource(text: string): Readable {
  return Readable.from([Buffer.from(text)], { objectMode: false });
}
