// `berth pulls` as an operator runs it: a real process reading the embedded store a serving registry
// has open, after the registry flushed what it counted.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RepositoryPullReport, TagPullReport } from '../../server/registry/stats/pull-report.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { runBerth, writeCliConfig } from '../helpers/berth-cli.js';
import { OCI_MANIFEST, RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

describe('berth pulls', () => {
  let reg: TestRegistry;
  let configFile: string;
  before(async () => {
    reg = await startTestRegistry({
      driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }),
      config: { gc: { enabled: false }, stats: { flushSeconds: 3600 } },
    });
    configFile = await writeCliConfig(reg.dir, { stats: { pullDays: 14 } });
    const client = new RegistryClient(reg.url);
    const { manifest } = await client.pushImage('team/app', 'v1');
    await client.pushManifest('team/app', 'v2', manifest);
    await client.pushImage('team/app', 'v3');
    for (const ref of ['v1', manifest.digest, 'v3', 'v3', 'v3']) {
      const res = await client.fetch(`/v2/team/app/manifests/${ref}`, { headers: { accept: OCI_MANIFEST } });
      await res.arrayBuffer();
    }
    await reg.app.pullCounter?.flush();
  });
  after(async () => reg?.close());

  it('prints the totals, the daily series and the tags most pulled first', async () => {
    const r = await runBerth(['pulls', 'team/app', '--days', '3', '--config', configFile]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^team\/app: 5 pulls, last \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
    assert.equal(lines[1], 'daily, last 3 days (UTC):');
    assert.match(lines[4] ?? '', /^ {2}\d{4}-\d\d-\d\d {2}5$/);
    assert.equal(lines[5], 'tags (3), most pulled first:');
    assert.deepEqual(
      lines.slice(6).map((l) => l.trim().split(/\s+/).slice(0, 2)),
      [
        ['3', 'v3'],
        ['2', 'v1'],
        ['1', 'v2'],
      ],
    );
  });

  it('prints the API’s JSON with --json, for a tag with --tag', async () => {
    const all = await runBerth(['pulls', 'team/app', '--json', '--config', configFile]);
    assert.equal(all.code, 0, all.stderr);
    const report = JSON.parse(all.stdout) as RepositoryPullReport;
    assert.equal(report.days, 14);
    assert.deepEqual(
      report.tags.map((t) => t.count),
      [2, 1, 3],
    );
    const one = await runBerth(['pulls', 'team/app', '--tag', 'v2', '--days', '1', '--json', '--config', configFile]);
    assert.equal(one.code, 0, one.stderr);
    const tag = JSON.parse(one.stdout) as TagPullReport;
    assert.equal(tag.count, 1);
    assert.deepEqual(
      tag.daily.map((d) => d.count),
      [1],
    );
  });

  it('exits 1 for an unknown repository and 2 for bad usage', async () => {
    const unknown = await runBerth(['pulls', 'nobody/here', '--config', configFile]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /repository nobody\/here is not known/);
    for (const args of [['pulls'], ['pulls', 'team/app', '--days', '15'], ['pulls', 'Team/App'], ['pulls', 'team/app', '--bogus']]) {
      const bad = await runBerth([...args, '--config', configFile]);
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.match(bad.stderr, /^berth pulls: /);
    }
  });
});
