import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuditLog, FileAuditSink, MemoryAuditSink, auditOperatorAction } from '../../server/operations/audit.js';
import { parseConfig } from '../../server/config.js';
import { authFailureRecorder, registryEventRecorder } from '../../server/operations/event-recorders.js';
import { Metrics } from '../../server/operations/metrics.js';

const scratch = mkdtempSync(join(tmpdir(), 'berth-audit-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const digestA = `sha256:${'a'.repeat(64)}`;
const digestB = `sha256:${'b'.repeat(64)}`;

describe('audit log', () => {
  it('appends one JSON line per event to the configured file, keeping earlier content', async () => {
    const file = join(scratch, 'audit.log');
    writeFileSync(file, '{"earlier":true}\n');
    const audit = AuditLog.fromConfig(parseConfig({ audit: { output: file } }));
    audit.emit({ action: 'push', actor: 'ann', actorKind: 'user', repository: 'team/app', digest: digestA, tag: 'v1', clientAddress: '10.0.0.5' });
    audit.emit({
      action: 'tag_moved',
      actor: 'ci-bot',
      actorKind: 'robot',
      repository: 'team/app',
      tag: 'v1',
      digest: digestB,
      previousDigest: digestA,
      clientAddress: '10.0.0.6',
    });
    audit.emit({ action: 'login_failed', actor: 'mallory', reason: 'bad_password', clientAddress: '203.0.113.9' });
    await audit.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 4);
    assert.deepEqual(JSON.parse(lines[0]!), { earlier: true });
    const [push, moved, failed] = lines.slice(1).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.match(String(push!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(push!.audit, true);
    assert.deepEqual(
      { ...push, time: undefined },
      {
        time: undefined,
        audit: true,
        action: 'push',
        actor: 'ann',
        actorKind: 'user',
        repository: 'team/app',
        digest: digestA,
        tag: 'v1',
        clientAddress: '10.0.0.5',
      },
    );
    assert.equal(moved!.action, 'tag_moved');
    assert.equal(moved!.previousDigest, digestA);
    assert.equal(moved!.digest, digestB);
    assert.equal(failed!.action, 'login_failed');
    assert.equal(failed!.reason, 'bad_password');
    assert.ok(!('repository' in failed!), 'absent fields are left out, not null');
  });

  it('fails fast with the path when the file cannot be opened', () => {
    assert.throws(() => new FileAuditSink(join(scratch, 'no', 'such', 'dir', 'audit.log')), /cannot open audit log .*no\/such\/dir/);
  });

  it('records command-line user and robot changes with the operating system account as actor', async () => {
    const file = join(scratch, 'cli-audit.log');
    const config = parseConfig({ audit: { output: file } });
    await auditOperatorAction(config, { action: 'user_added', subject: 'ann' });
    await auditOperatorAction(config, { action: 'robot_removed', subject: 'robot+ci', actor: 'deploy-script' });
    const [added, removed] = readFileSync(file, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(added!.action, 'user_added');
    assert.equal(added!.subject, 'ann');
    assert.equal(added!.actorKind, 'operator');
    assert.ok(typeof added!.actor === 'string' && added!.actor.length > 0);
    assert.ok(!('clientAddress' in added!));
    assert.equal(removed!.actor, 'deploy-script');
  });

  it('writes nothing when disabled', async () => {
    const audit = AuditLog.fromConfig(parseConfig({ audit: { enabled: false, output: join(scratch, 'never.log') } }));
    assert.equal(audit.enabled, false);
    audit.emit({ action: 'pull', actor: 'x' });
    await audit.close();
    assert.throws(() => readFileSync(join(scratch, 'never.log')));
  });
});

describe('registry events to audit and metrics', () => {
  it('audits every event with actor, repository, digest and client address, and counts pushes and pulls', async () => {
    const sink = new MemoryAuditSink();
    const metrics = new Metrics({ processMetrics: false });
    const record = registryEventRecorder({ audit: new AuditLog(sink), metrics });
    const request = { ip: '192.0.2.1', id: 'req-1' };
    record({ action: 'push', repository: 'lib/a', digest: digestA, tag: 'latest', principal: { subject: 'ann', kind: 'user' }, request });
    record({ action: 'pull', repository: 'lib/a', digest: digestA, principal: { subject: '', kind: 'anonymous' }, request });
    record({ action: 'delete', repository: 'lib/a', digest: digestA, principal: { subject: 'ops', kind: 'robot' }, request });
    const events = sink.events;
    assert.deepEqual(
      events.map((e) => [e.action, e.actor, e.actorKind, e.repository, e.digest, e.clientAddress, e.requestId]),
      [
        ['push', 'ann', 'user', 'lib/a', digestA, '192.0.2.1', 'req-1'],
        ['pull', 'anonymous', 'anonymous', 'lib/a', digestA, '192.0.2.1', 'req-1'],
        ['delete', 'ops', 'robot', 'lib/a', digestA, '192.0.2.1', 'req-1'],
      ],
    );
    const text = await metrics.exposition();
    assert.match(text, /^berth_pushes_total\{repository="lib\/a"\} 1$/m);
    assert.match(text, /^berth_pulls_total\{repository="lib\/a"\} 1$/m);
  });

  it('audits and counts login failures', async () => {
    const sink = new MemoryAuditSink();
    const metrics = new Metrics({ processMetrics: false });
    authFailureRecorder({ audit: new AuditLog(sink), metrics })({ actor: 'eve', reason: 'invalid_credentials', request: { ip: '198.51.100.7', id: 'r2' } });
    assert.deepEqual(
      sink.events.map(({ time: _time, ...rest }) => rest),
      [{ audit: true, action: 'login_failed', actor: 'eve', reason: 'invalid_credentials', clientAddress: '198.51.100.7', requestId: 'r2' }],
    );
    assert.match(await metrics.exposition(), /^berth_auth_failures_total\{reason="invalid_credentials"\} 1$/m);
  });
});
