import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { digestOf, runMetadataStoreContract } from '../contract/metadata-store.contract.js';
import { runMetadataGcContract } from '../contract/metadata-gc.contract.js';
import { runMetadataRetentionContract } from '../contract/metadata-retention.contract.js';
import { runMetadataReplicationContract } from '../contract/metadata-replication.contract.js';
import { embeddedStores } from '../helpers/metadata-stores.js';
import { advanceUpload } from '../helpers/upload-cas-loop.js';
import { advanceRuleState } from '../helpers/rule-state-cas-loop.js';

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'berth-embedded-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const contractStore = embeddedStores(() => scratch);
runMetadataStoreContract('embedded', contractStore);
runMetadataGcContract('embedded', contractStore);
runMetadataRetentionContract('embedded', contractStore);
runMetadataReplicationContract('embedded', contractStore);

const embeddedModule = new URL('../../storage-drivers/metadata/embedded.js', import.meta.url).href;
const casLoopModule = new URL('../helpers/upload-cas-loop.js', import.meta.url).href;
const ruleLoopModule = new URL('../helpers/rule-state-cas-loop.js', import.meta.url).href;

/** Runs `body` in a child node process with `store` open on `path`; resolves with the child once it printed `marker`. */
async function childWriting(path: string, body: string, marker: string) {
  const script = `
    import { EmbeddedStore } from ${JSON.stringify(embeddedModule)};
    const store = new EmbeddedStore({ path: ${JSON.stringify(path)} });
    ${body}
    process.stdout.write(${JSON.stringify(marker)} + '\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not report in 10 s')), 10_000);
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes(marker)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited early (${code}): ${out}`));
    });
  });
  return child;
}

describe('embedded store durability', () => {
  it('keeps everything across close and reopen', async () => {
    const path = join(scratch, 'reopen');
    const m = { digest: digestOf('m'), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 3, references: [], createdAt: 1 };
    const first = new EmbeddedStore({ path });
    await first.putManifest('r', m, ['latest']);
    await first.linkBlob('r', { digest: digestOf('b'), size: 9 });
    await first.createUpload({ id: 'u', repo: 'r', offset: 5, revision: 2, createdAt: 1, updatedAt: 2 });
    await first.close();
    await assert.rejects(first.resolveTag('r', 'latest'), { name: 'MetadataUnavailableError' });

    const second = new EmbeddedStore({ path });
    try {
      assert.equal(await second.resolveTag('r', 'latest'), m.digest);
      assert.deepEqual(await second.getManifest('r', m.digest), m);
      assert.deepEqual(await second.getTaggedManifest('r', 'latest'), m);
      assert.equal(await second.getTaggedManifest('r', 'nope'), undefined);
      assert.deepEqual(await second.getBlobLink('r', digestOf('b')), { digest: digestOf('b'), size: 9 });
      assert.equal((await second.getUpload('u'))?.offset, 5);
      assert.deepEqual(await second.listRepositories({}), ['r']);
    } finally {
      await second.close();
    }
  });

  it('keeps acknowledged writes when the process is killed with SIGKILL', async () => {
    const path = join(scratch, 'killed');
    const child = await childWriting(
      path,
      `for (let i = 0; i < 50; i++) {
         await store.putManifest('r', { digest: 'sha256:' + String(i).padStart(64, '0'), mediaType: 'x', size: i, references: [], createdAt: i }, ['t' + i]);
       }`,
      'written',
    );
    child.kill('SIGKILL');
    await once(child, 'exit');
    const store = new EmbeddedStore({ path });
    try {
      const tags = await store.listTags('r', {});
      assert.equal(tags.length, 50);
      assert.equal(await store.resolveTag('r', 't49'), `sha256:${'49'.padStart(64, '0')}`);
    } finally {
      await store.close();
    }
  });

  /**
   * Runs `loop` (exported as `name` by `module`, taking a store, `key` and a count) 300 times here and
   * in a child process on one store path at once; returns each side's wins.
   */
  async function raceWithChild(
    mine: EmbeddedStore,
    path: string,
    race: { module: string; name: string; key: string },
    loop: (store: EmbeddedStore, key: string, times: number) => Promise<number>,
  ): Promise<{ myWins: number; childWins: number }> {
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { EmbeddedStore } from ${JSON.stringify(embeddedModule)};
         import { ${race.name} } from ${JSON.stringify(race.module)};
         const store = new EmbeddedStore({ path: ${JSON.stringify(path)} });
         const wins = await ${race.name}(store, ${JSON.stringify(race.key)}, 300);
         await store.close();
         console.log('wins=' + wins);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const exited = once(child, 'exit');
    try {
      const myWins = await loop(mine, race.key, 300);
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0);
      return { myWins, childWins: Number(/wins=(\d+)/.exec(out)?.[1]) };
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }

  it('loses no upload update when two processes compare-and-set the same session', async () => {
    const path = join(scratch, 'cas');
    const mine = new EmbeddedStore({ path });
    await mine.createUpload({ id: 'u', repo: 'r', offset: 0, revision: 0, createdAt: 1, updatedAt: 1 });
    // Both sides read the session and try to advance it by one, many times; every win must count.
    try {
      const { myWins, childWins } = await raceWithChild(mine, path, { module: casLoopModule, name: 'advanceUpload', key: 'u' }, advanceUpload);
      const final = await mine.getUpload('u');
      assert.equal(final?.revision, myWins + childWins);
      assert.equal(final?.offset, myWins + childWins);
      assert.ok(myWins > 0 && childWins > 0);
    } finally {
      await mine.close();
    }
  });

  it('loses no replication rule update when two processes compare-and-set the same rule', async () => {
    const path = join(scratch, 'rule-cas');
    const mine = new EmbeddedStore({ path });
    // Both sides start from nothing stored (revision 0), so the very first write is raced too.
    try {
      const { myWins, childWins } = await raceWithChild(mine, path, { module: ruleLoopModule, name: 'advanceRuleState', key: 'mirror' }, advanceRuleState);
      assert.deepEqual(await mine.replication.getRuleState('mirror'), { revision: myWins + childWins, state: String(myWins + childWins) });
      assert.ok(myWins > 0 && childWins > 0);
    } finally {
      await mine.close();
    }
  });

  it('two processes share one store path', async () => {
    const path = join(scratch, 'shared');
    const mine = new EmbeddedStore({ path });
    const child = await childWriting(
      path,
      `await store.putManifest('other', { digest: 'sha256:${'a'.repeat(64)}', mediaType: 'x', size: 1, references: [], createdAt: 1 }, ['from-child']);`,
      'written',
    );
    try {
      assert.equal(await mine.resolveTag('other', 'from-child'), `sha256:${'a'.repeat(64)}`);
      await mine.createUpload({ id: 'x', repo: 'other', offset: 0, revision: 0, createdAt: 1, updatedAt: 1 });
      assert.equal(await mine.updateUpload('x', 0, { id: 'x', repo: 'other', offset: 1, revision: 1, createdAt: 1, updatedAt: 2 }), true);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
      await mine.close();
    }
  });
});
