// `berth gc` as an operator runs it: a real process next to a serving registry, over filesystem
// storage and an embedded metadata store both open in the two processes.
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GcCommandResult } from '../../server/main.js';
import { blobKey } from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { BlobNotFoundError, type BlobDriver } from '../../storage-drivers/blob/types.js';
import { runBerth, writeCliConfig, type CommandResult } from '../helpers/berth-cli.js';
import { randomBlob, RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

/** No delay and no quarantine, so one run deletes what it judges garbage; untagged manifests go at once. */
const GC = { enabled: false, delaySeconds: 0, quarantineSeconds: 0, deleteUntagged: true, untaggedAgeSeconds: 0 };

async function stored(driver: BlobDriver, digest: string): Promise<boolean> {
  try {
    await driver.stat(blobKey(parseDigest(digest)));
    return true;
  } catch (err) {
    if (err instanceof BlobNotFoundError) return false;
    throw err;
  }
}

async function startFilesystemRegistry(): Promise<TestRegistry> {
  return startTestRegistry({ driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }), config: { gc: GC } });
}

/** The configuration `berth gc` reads: the registry's own directories, the audit appended to a file. */
async function writeConfig(reg: TestRegistry): Promise<{ configFile: string; auditFile: string }> {
  const auditFile = join(reg.dir, 'audit.log');
  const configFile = await writeCliConfig(reg.dir, { gc: GC, audit: { output: auditFile } });
  return { configFile, auditFile };
}

async function auditLines(file: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function summaryOf(run: CommandResult): GcCommandResult & { interrupted: boolean } {
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr}`);
  return JSON.parse(run.stdout) as GcCommandResult & { interrupted: boolean };
}

describe('berth gc next to a serving registry (filesystem + embedded)', () => {
  let reg: TestRegistry;
  let c: RegistryClient;
  let configFile: string;
  let auditFile: string;
  const gc = (...args: string[]) => runBerth(['gc', '--config', configFile, '--progress-ms', '0', ...args]);

  before(async () => {
    reg = await startFilesystemRegistry();
    c = new RegistryClient(reg.url);
    ({ configFile, auditFile } = await writeConfig(reg));
  });
  after(async () => reg?.close());

  it('--dry-run --json reports what would go and changes nothing', async () => {
    const orphan = randomBlob(4000);
    await c.pushBlob('cli/dry', orphan);
    const dry = summaryOf(await gc('--dry-run', '--json'));
    assert.equal(dry.dryRun, true);
    assert.equal(dry.passes, 1);
    assert.ok(dry.examined >= 1, `examined ${dry.examined}`);
    assert.ok(dry.blobsQuarantined + dry.blobsDeleted >= 1, JSON.stringify(dry));
    for (const field of ['blobsDeleted', 'bytesFreed', 'manifestsDeleted', 'blobsQuarantined', 'linksRemoved', 'errors', 'remaining', 'durationMs']) {
      assert.equal(typeof (dry as unknown as Record<string, unknown>)[field], 'number', field);
    }
    assert.equal(await stored(reg.driver, orphan.digest), true);
    assert.equal((await c.fetch(`/v2/cli/dry/blobs/${orphan.digest}`, { method: 'HEAD' })).status, 200);
    assert.deepEqual(await auditLines(auditFile), [], 'a dry run is not audited');
    // Still queued: the next dry run reports it again.
    const again = summaryOf(await gc('--dry-run', '--json'));
    assert.ok(again.blobsQuarantined + again.blobsDeleted >= 1, JSON.stringify(again));
  });

  it('deletes an orphan and an untagged manifest with its layers, reports the bytes freed, and audits the run', async () => {
    const orphan = randomBlob(5000);
    await c.pushBlob('cli/app', orphan);
    const old = await c.pushImage('cli/app', 'v1', [3000, 2000]);
    // The tag moves: the old manifest is untagged, and with it its config and layers unreferenced.
    const current = await c.pushImage('cli/app', 'v1', [1000]);

    const run = await gc('--json');
    const summary = summaryOf(run);
    assert.equal(summary.dryRun, false);
    assert.equal(summary.interrupted, false);
    assert.ok(summary.passes >= 2, `the layers are queued by the manifest's deletion, for a later pass: ${summary.passes}`);
    assert.equal(summary.remaining, 0);
    assert.ok(summary.manifestsDeleted >= 1);
    const gone = [orphan, old.manifest, old.config, ...old.layers];
    assert.ok(summary.blobsDeleted >= gone.length, JSON.stringify(summary));
    const goneBytes = gone.reduce((sum, b) => sum + b.size, 0);
    assert.ok(summary.bytesFreed >= goneBytes, `freed ${summary.bytesFreed}, expected at least ${goneBytes}`);
    assert.match(run.stderr, /^gc: pass 1: \d+ examined/m);
    for (const b of gone) assert.equal(await stored(reg.driver, b.digest), false, b.digest);
    assert.equal((await c.fetch(`/v2/cli/app/manifests/${old.manifest.digest}`)).status, 404);
    assert.equal((await c.fetch(`/v2/cli/app/blobs/${orphan.digest}`, { method: 'HEAD' })).status, 404);
    assert.equal((await c.fetch('/v2/cli/app/manifests/v1')).status, 200);
    for (const b of [current.manifest, current.config, ...current.layers]) assert.equal(await stored(reg.driver, b.digest), true, b.digest);

    const lines = await auditLines(auditFile);
    const deleted = lines.find((l) => l.action === 'gc_manifest_deleted' && l.digest === old.manifest.digest);
    assert.ok(deleted, JSON.stringify(lines));
    assert.equal(deleted.repository, 'cli/app');
    assert.equal(deleted.reason, 'untagged');
    assert.equal(deleted.actorKind, 'operator');
    const runLine = lines.find((l) => l.action === 'gc_run');
    assert.ok(runLine, JSON.stringify(lines));
    assert.deepEqual(runLine.gc, {
      passes: summary.passes,
      manifestsDeleted: summary.manifestsDeleted,
      blobsQuarantined: summary.blobsQuarantined,
      blobsDeleted: summary.blobsDeleted,
      bytesFreed: summary.bytesFreed,
      linksRemoved: summary.linksRemoved,
      uploadsExpired: summary.uploadsExpired,
      errors: summary.errors,
    });
    assert.equal(lines.filter((l) => l.action === 'gc_blob_deleted').length, 0, 'no line per blob');

    // Nothing left: the human summary says so.
    const idle = await gc();
    assert.equal(idle.code, 0, idle.stderr);
    assert.match(idle.stdout, /^gc: deleted 0 manifests and 0 blobs \(0 B freed\)/m);
    assert.match(idle.stdout, /0 due items left/);
  });

  it('--full finds bytes in storage that nothing ever queued', async () => {
    const live = await c.pushImage('cli/full', 'v1', [1500]);
    const stray = randomBlob(3000);
    // Written around Berth: no upload, no record, no queue item.
    await reg.driver.put(blobKey(parseDigest(stray.digest)), stray.data);

    const plain = summaryOf(await gc('--json'));
    assert.equal(plain.queued, undefined);
    assert.equal(await stored(reg.driver, stray.digest), true, 'an incremental pass only judges queued work');

    const full = summaryOf(await gc('--full', '--json'));
    assert.ok(full.queued, JSON.stringify(full));
    assert.ok(full.queued.blobs >= 4, `queued ${full.queued.blobs} blobs`);
    assert.ok(full.bytesFreed >= stray.size, JSON.stringify(full));
    assert.equal(await stored(reg.driver, stray.digest), false);
    for (const b of [live.manifest, live.config, ...live.layers]) assert.equal(await stored(reg.driver, b.digest), true, b.digest);
    assert.equal((await c.fetch('/v2/cli/full/manifests/v1')).status, 200);
  });

  it('refuses bad usage with exit status 2', async () => {
    for (const args of [['--limit', '0'], ['--limit'], ['--bogus']]) {
      const run = await gc(...args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /^berth gc: /);
      assert.match(run.stderr, /Usage: berth gc/);
    }
  });
});

describe('berth gc on a metadata store that lost its data', () => {
  it('refuses with exit status 2 and a message, and runs once `berth metadata rebuild` has marked the store complete', async () => {
    const reg = await startFilesystemRegistry();
    try {
      const c = new RegistryClient(reg.url);
      const image = await c.pushImage('cli/lost', 'v1', [2500]);
      await reg.app.close();
      await reg.storage.close();
      await rm(join(reg.dir, 'metadata'), { recursive: true, force: true });
      const { configFile, auditFile } = await writeConfig(reg);

      const refused = await runBerth(['gc', '--config', configFile, '--json']);
      assert.equal(refused.code, 2, refused.stderr);
      assert.equal(refused.stdout, '');
      assert.match(refused.stderr, /^berth gc: garbage collection refused: the metadata store is not known to be complete/);
      assert.match(refused.stderr, /berth metadata rebuild/);
      assert.deepEqual(await auditLines(auditFile), []);
      for (const b of [image.manifest, image.config, ...image.layers]) assert.equal(await stored(reg.driver, b.digest), true, b.digest);

      const rebuilt = await runBerth(['metadata', 'rebuild', '--config', configFile]);
      assert.equal(rebuilt.code, 0, rebuilt.stderr);
      const collected = summaryOf(await runBerth(['gc', '--config', configFile, '--json']));
      assert.ok(collected.examined >= 3, 'the rebuild queued every stored blob: manifest, config, layer');
      assert.equal(collected.blobsDeleted, 0, JSON.stringify(collected));
      for (const b of [image.manifest, image.config, ...image.layers]) assert.equal(await stored(reg.driver, b.digest), true, b.digest);
    } finally {
      await rm(reg.dir, { recursive: true, force: true });
    }
  });
});
