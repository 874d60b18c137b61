// What main.ts wires for replication: createOperations' onReplication counts per configured rule and
// audits the changes on a target (not the tags found in step), and passes that changed something.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AggregatorRegistry, Registry } from 'prom-client';
import { parseConfig } from '../../server/config.js';
import { AuditLog, MemoryAuditSink } from '../../server/operations/audit.js';
import { Metrics } from '../../server/operations/metrics.js';
import { createOperations, type Operations } from '../../server/operations/operations.js';
import { ReplicationMetrics } from '../../server/operations/replication-metrics.js';
import type { TagOutcome } from '../../server/registry/replication/sync.js';
import { assembleStorageStack, type StorageStack } from '../../server/storage-stack.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';

describe('replication in the operations wiring', () => {
  let dir: string;
  let storage: StorageStack;
  let ops: Operations;
  const sink = new MemoryAuditSink();
  const metrics = new Metrics({ processMetrics: false });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-repl-ops-'));
    const config = parseConfig({
      dataDir: dir,
      log: { level: 'silent' },
      replication: {
        registries: [{ name: 'b', urls: ['http://127.0.0.1:9'] }],
        rules: [
          { name: 'to-b', direction: 'push', registry: 'b', repositories: ['team/**'] },
          { name: 'parked', direction: 'push', registry: 'b', repositories: ['old/**'], enabled: false },
        ],
      },
    });
    storage = assembleStorageStack({ driver: new MemoryDriver(), metadata: new EmbeddedStore({ path: join(dir, 'metadata') }) });
    ops = createOperations({ config, storage, metrics, audit: new AuditLog(sink), logDestination: { write: () => undefined } });
  });
  after(async () => {
    await ops?.close();
    await storage?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const tag = (outcome: TagOutcome, name: string) =>
    ops.onReplication({
      kind: 'tag',
      rule: 'to-b',
      via: 'event',
      result: { outcome, sourceRepository: 'team/app', targetRepository: 'mirror/team/app', tag: name, digest: `sha256:${'a'.repeat(64)}`, bytes: 10 },
    });

  it('exposes zeroed series for the enabled rules only, before anything ran', async () => {
    const text = await metrics.exposition();
    assert.match(text, /^berth_replication_passes_total\{rule="to-b",result="ok"\} 0$/m);
    assert.match(text, /^berth_replication_failures_total\{rule="to-b",via="event"\} 0$/m);
    assert.doesNotMatch(text, /rule="parked"/);
  });

  it('audits each change on the target and each pass that changed something; counts them all', async () => {
    for (const [outcome, name] of [
      ['copied', 'v1'],
      ['in_sync', 'v2'],
      ['not_on_source', 'v3'],
      ['overwritten', 'v4'],
      ['backed_up', 'v5'],
      ['deleted', 'v6'],
      ['conflict_skipped', 'v7'],
    ] as const)
      tag(outcome, name);
    const summary = { holder: 'h', startedAt: 1000, finishedAt: 3000, repositories: 1, failures: 0, bytes: 0 };
    ops.onReplication({ kind: 'run', rule: 'to-b', summary: { ...summary, result: 'ok', tags: { in_sync: 4 } } });
    ops.onReplication({ kind: 'run', rule: 'to-b', summary: { ...summary, result: 'partial', tags: { in_sync: 3 }, failures: 1, lastError: 'b: 503' } });
    ops.onReplication({ kind: 'failure', rule: 'to-b', repository: 'team/app', tag: 'v8', error: 'b: 503', via: 'reconcile' });
    ops.onReplication({ kind: 'lag', rule: 'to-b', seconds: 42, behind: 1 });
    assert.deepEqual(
      sink.events.map((e) => [e.action, e.actor, e.actorKind, e.tag]),
      [
        ['replication_tag_copied', 'replication:to-b', 'system', 'v1'],
        ['replication_tag_overwritten', 'replication:to-b', 'system', 'v4'],
        ['replication_tag_backed_up', 'replication:to-b', 'system', 'v5'],
        ['replication_tag_deleted', 'replication:to-b', 'system', 'v6'],
        ['replication_conflict_skipped', 'replication:to-b', 'system', 'v7'],
        ['replication_pass', 'replication:to-b', 'system', undefined],
      ],
    );
    const pass = sink.events.at(-1);
    assert.equal(pass?.reason, 'b: 503');
    assert.deepEqual(pass?.replication, { result: 'partial', repositories: 1, tags: { in_sync: 3 }, failures: 1, bytes: 0 });
    assert.equal(sink.events[0]?.repository, 'mirror/team/app');
    const text = await metrics.exposition();
    assert.match(text, /^berth_replication_tags_total\{rule="to-b",outcome="in_sync",via="event"\} 1$/m);
    assert.match(text, /^berth_replication_sent_bytes_total\{rule="to-b"\} 70$/m);
    assert.match(text, /^berth_replication_passes_total\{rule="to-b",result="partial"\} 1$/m);
    assert.match(text, /^berth_replication_failures_total\{rule="to-b",via="reconcile"\} 1$/m);
    assert.match(text, /^berth_replication_lag_seconds\{rule="to-b"\} 42$/m);
    assert.match(text, /^berth_replication_last_pass_timestamp_seconds\{rule="to-b"\} 3$/m);
  });

  it('gives the cluster primary the largest lag of its workers, not their sum', async () => {
    const workers = [10, 30].map((seconds) => {
      const registry = new Registry();
      new ReplicationMetrics(registry, ['to-b']).record({ kind: 'lag', rule: 'to-b', seconds, behind: 2 });
      return registry;
    });
    const merged = AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
    const text = await merged.metrics();
    assert.match(text, /^berth_replication_lag_seconds\{rule="to-b"\} 30$/m);
    assert.match(text, /^berth_replication_behind_artifacts\{rule="to-b"\} 2$/m);
  });
});
