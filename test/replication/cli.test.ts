// `berth replication status|run` as an operator runs them: a real process next to a serving registry
// A (filesystem storage, embedded metadata open in both), pulling from a registry B over HTTP.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { RunSummary } from '../../server/registry/replication/rule-state.js';
import type { RuleStatus } from '../../server/registry/replication/status.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { cliSettings, runBerth } from '../helpers/berth-cli.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

describe('berth replication next to a serving registry (filesystem + embedded)', () => {
  let a: TestRegistry;
  let b: TestRegistry;
  let configFile: string;
  let auditFile: string;
  const berth = (...args: string[]) => runBerth(['replication', ...args, '--config', configFile]);
  const digests = new Map<string, string>();

  before(async () => {
    b = await startTestRegistry();
    a = await startTestRegistry({ driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }), config: { gc: { enabled: false } } });
    const client = new RegistryClient(b.url);
    for (const tag of ['v1', 'v2']) digests.set(tag, (await client.pushImage('team/app', tag)).manifest.digest);
    configFile = join(a.dir, 'berth.yaml');
    auditFile = join(a.dir, 'audit.log');
    const settings = cliSettings(a.dir, {
      gc: { enabled: false },
      audit: { output: auditFile },
      replication: {
        registries: [
          { name: 'b', urls: [b.url], timeoutSeconds: 10 },
          { name: 'gone', urls: ['http://127.0.0.1:9'], timeoutSeconds: 2 },
        ],
        rules: [
          { name: 'from-b', direction: 'pull', registry: 'b', repositories: ['team/**'], reconcileSeconds: 0 },
          { name: 'from-gone', direction: 'pull', registry: 'gone', repositories: ['lost/app'], reconcileSeconds: 0 },
          { name: 'parked', direction: 'pull', registry: 'b', repositories: ['old/**'], enabled: false },
        ],
      },
    });
    await writeFile(configFile, stringify(settings));
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  it('status before any pass: never run, nothing behind', async () => {
    const result = await berth('status', '--rule', 'from-b');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^from-b: pull from b; lag 0 s; artifacts: none$/m);
    assert.match(result.stdout, /^ {2}last pass: never$/m);
  });

  it('run copies the rule’s tags into A under the lease, audits them, and reports the pass', async () => {
    const result = await berth('run', 'from-b', '--json');
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as RunSummary;
    assert.equal(summary.result, 'ok');
    assert.deepEqual(summary.tags, { copied: 2 });
    assert.match(result.stderr, /^replication from-b: team\/app:v1: copied$/m);
    const clientA = new RegistryClient(a.url);
    for (const [tag, digest] of digests) {
      assert.equal(await a.metadata.resolveTag('team/app', tag), digest);
      // Served by A's process from what the command stored: the manifest and its blobs are there.
      const res = await clientA.fetch(`/v2/team/app/manifests/${tag}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), digest);
    }
    const audit = (await readFile(auditFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; actorKind: string; rule?: string; tag?: string });
    // Tags are copied concurrently: their lines come in any order, the pass's last.
    assert.deepEqual(
      audit
        .slice(0, -1)
        .map((e) => [e.action, e.actorKind, e.rule, e.tag])
        .sort(),
      [
        ['replication_tag_copied', 'operator', 'from-b', 'v1'],
        ['replication_tag_copied', 'operator', 'from-b', 'v2'],
      ],
    );
    assert.deepEqual([audit.at(-1)?.action, audit.at(-1)?.rule, audit.length], ['replication_pass', 'from-b', 3]);
  });

  it('status shows the pass and the artifacts, as text and as JSON; a rule that cannot reach its registry fails and says so', async () => {
    const text = await berth('status', '--rule', 'from-b');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^from-b: pull from b; lag 0 s; artifacts: 2 synced$/m);
    assert.match(text.stdout, /^ {2}last pass: \S+ ok \(1 repositories; tags: 2 copied; 0 failures, \d+ bytes\)$/m);

    const failed = await berth('run', 'from-gone');
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stdout, /^replication from-gone: (failed|partial): /m);

    const json = await berth('status', '--json');
    assert.equal(json.code, 1, 'a shown rule whose last pass failed');
    const body = JSON.parse(json.stdout) as { rules: { name: string; enabled: boolean; status?: RuleStatus }[] };
    assert.deepEqual(
      body.rules.map((r) => [r.name, r.enabled]),
      [
        ['from-b', true],
        ['from-gone', true],
        ['parked', false],
      ],
    );
    assert.deepEqual(body.rules[0]?.status?.artifacts, { synced: 2 });
    assert.equal(body.rules[0]?.status?.state.lastRun?.result, 'ok');
    assert.notEqual(body.rules[1]?.status?.state.lastRun?.result, 'ok');
    assert.equal(body.rules[2]?.status, undefined);
  });

  it('run waits for nobody: exit 3 while another process holds the rule’s lease', async () => {
    assert.ok(await a.metadata.acquireLease('replication:from-b', 'another-server', 60_000));
    try {
      const result = await berth('run', 'from-b');
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, /another process runs a pass of from-b/);
    } finally {
      await a.metadata.releaseLease('replication:from-b', 'another-server');
    }
  });

  it('bad usage exits 2 with the help: unknown or disabled rules, a missing operand, unknown options', async () => {
    for (const args of [['run', 'nope'], ['run', 'parked'], ['run'], ['status', '--rule', 'nope'], ['status', '--bogus'], ['sync']]) {
      const result = await berth(...args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /Usage:\n {2}berth replication status/, args.join(' '));
    }
    const help = await runBerth(['replication', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /berth replication run RULE/);
    const top = await runBerth(['help']);
    assert.match(top.stdout, /berth replication status\|run/);
  });
});
