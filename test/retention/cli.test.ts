// `berth retention preview|run` as an operator runs them: a real process next to a serving registry,
// over filesystem storage and an embedded metadata store open in both.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { RepositoryPreview } from '../../server/registry/retention/preview.js';
import type { RunSummary } from '../../server/registry/retention/retention.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { cliSettings, runBerth } from '../helpers/berth-cli.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const POLICIES = [{ name: 'last-two', repositories: ['cli/**'], keepLastPushed: 2 }];

describe('berth retention next to a serving registry (filesystem + embedded)', () => {
  let reg: TestRegistry;
  let c: RegistryClient;
  let configFile: string;
  let auditFile: string;
  let settings: Record<string, unknown>;
  const berth = (...args: string[]) => runBerth(['retention', ...args, '--config', configFile]);

  before(async () => {
    reg = await startTestRegistry({ driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }), config: { gc: { enabled: false } } });
    c = new RegistryClient(reg.url);
    configFile = join(reg.dir, 'berth.yaml');
    auditFile = join(reg.dir, 'audit.log');
    settings = cliSettings(reg.dir, { gc: { enabled: false }, retention: { policies: POLICIES }, audit: { output: auditFile } });
    await writeFile(configFile, stringify(settings));
    // Pushed in order: t1 oldest. Tags pushed within one millisecond rank by name, which is the same order.
    for (const t of ['t1', 't2', 't3', 't4', 't5']) await c.pushImage('cli/app', t);
  });
  after(async () => reg?.close());

  const tags = async () => reg.metadata.listTags('cli/app', {});

  it('preview says per tag what would go and why, with the guard’s refusal, and changes nothing', async () => {
    const text = await berth('preview', '--repository', 'cli/app');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^cli\/app: policy "last-two": would delete 3 of 5 tags, keep 2 \(a tag is kept if any keep rule keeps it\)$/m);
    assert.match(text.stdout, /guard: REFUSED \(a forced run would go ahead\): .*3 of 5 tags \(60\.0%\), more than maxDeleteFraction 0\.5/);
    assert.match(text.stdout, /^ {2}delete t1 .* deleted: no keep rule keeps it .*keepLastPushed 2: #5 most recently pushed$/m);
    assert.match(text.stdout, /^ {2}keep {3}t5 .* kept by keepLastPushed 2: #1 most recently pushed$/m);

    const json = await berth('preview', '--json');
    const body = JSON.parse(json.stdout) as { repositories: RepositoryPreview[] };
    assert.equal(body.repositories.length, 1);
    assert.deepEqual(
      body.repositories[0]!.tags.filter((t) => t.action === 'delete').map((t) => t.tag),
      ['t1', 't2', 't3'],
    );
    assert.deepEqual(await tags(), ['t1', 't2', 't3', 't4', 't5']);
  });

  it('preview --policy-file shows a changed policy before it is deployed; a bad one is named', async () => {
    const file = join(reg.dir, 'next.yaml');
    await writeFile(file, stringify({ policies: [{ name: 'next', repositories: ['cli/**'], keepTags: ['t1', '/^t[45]$/'] }] }));
    const result = await berth('preview', '--policy-file', file, '--deleted-only');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /policy "next": would delete 2 of 5 tags/);
    assert.match(result.stdout, /guard: ok/);
    assert.doesNotMatch(result.stdout, /^ {2}keep/m);

    await writeFile(file, stringify([{ name: 'bad', repositories: ['cli/**'], keepPushedWithin: 'a month' }]));
    const bad = await berth('preview', '--policy-file', file);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /0\.keepPushedWithin: must be a whole number and a unit/);
  });

  it('run is refused by the guard, deletes with --force, and audits each deletion with its policy and reason', async () => {
    const refused = await berth('run', '--json');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cli\/app: policy "last-two" would delete 3 of 5 tags/);
    assert.equal((JSON.parse(refused.stdout) as RunSummary).refused, 1);
    assert.deepEqual(await tags(), ['t1', 't2', 't3', 't4', 't5']);

    const forced = await berth('run', '--force', '--json');
    assert.equal(forced.code, 0, forced.stderr);
    const summary = JSON.parse(forced.stdout) as RunSummary;
    assert.equal(summary.tagsDeleted, 3);
    assert.deepEqual(await tags(), ['t4', 't5']);
    assert.equal((await c.fetch('/v2/cli/app/manifests/t5')).status, 200);

    const lines = (await readFile(auditFile, 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const refusal = lines.find((l) => l.action === 'retention_refused');
    assert.equal(refusal?.policy, 'last-two');
    const deleted = lines.filter((l) => l.action === 'retention_tag_deleted');
    assert.deepEqual(deleted.map((l) => l.tag).sort(), ['t1', 't2', 't3']);
    for (const l of deleted) {
      assert.equal(l.policy, 'last-two');
      assert.equal(l.repository, 'cli/app');
      assert.equal(l.actorKind, 'operator');
      assert.match(String(l.reason), /no keep rule keeps it/);
    }
    const run = lines.filter((l) => l.action === 'retention_run').at(-1);
    assert.deepEqual((run?.retention as Record<string, unknown>).tagsDeleted, 3);
    assert.equal((run?.retention as Record<string, unknown>).forced, true);
  });

  it('run judges pull rules by the pull statistics the server counted: a tag pulled by digest is kept', async () => {
    const file = join(reg.dir, 'pulls.yaml');
    const policies = [{ name: 'pulled', repositories: ['cli/pulled'], keepLastPushed: 1, keepPulledWithin: '30d', maxDeleteFraction: 1 }];
    await writeFile(file, stringify({ ...settings, retention: { policies } }));
    const a = await c.pushImage('cli/pulled', 'a');
    await c.pushImage('cli/pulled', 'b');
    await c.pushImage('cli/pulled', 'c');
    // containerd's way: HEAD by tag, then GET by digest; the digest pull is credited to `a`.
    assert.equal((await c.fetch(`/v2/cli/pulled/manifests/${a.manifest.digest}`)).status, 200);
    await reg.app.pullCounter?.flush();
    const run = await runBerth(['retention', 'run', '--json', '--config', file]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await reg.metadata.listTags('cli/pulled', {}), ['a', 'c']);
  });

  it('a pull rule with stats.enabled false is a configuration error, not a guess', async () => {
    const file = join(reg.dir, 'nostats.yaml');
    const policies = [{ name: 'pulled', repositories: ['cli/**'], keepLastPushed: 1, keepPulledWithin: '30d' }];
    await writeFile(file, stringify({ ...settings, stats: { enabled: false }, retention: { policies } }));
    const before = await tags();
    const run = await runBerth(['retention', 'run', '--force', '--config', file]);
    assert.equal(run.code, 1, 'an invalid configuration, as for every command');
    assert.match(run.stderr, /retention\.policies\.0\.keepPulledWithin.*stats\.enabled is false/);
    assert.deepEqual(await tags(), before);
  });

  it('bad usage exits 2 with the help', async () => {
    const result = await berth('run', '--policy-file', 'x.yaml');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /preview a --policy-file, then deploy it/);
    const unknown = await berth('preview', '--everything');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown option --everything/);
  });
});
