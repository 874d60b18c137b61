// Retention over the management API: status, preview of the configured policies and of a policy in
// the body, a run on request whose deletions reach the audit log and the metrics; access with auth on
// (the registry resource `retention`, like `gc`).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { AuditLog, MemoryAuditSink } from '../../server/operations/audit.js';
import { retentionEventRecorder } from '../../server/operations/event-recorders.js';
import { Metrics } from '../../server/operations/metrics.js';
import type { PreviewEntry } from '../../server/registry/retention/preview.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const POLICY = { name: 'keep-three', repositories: ['api/**'], keepLastPushed: 3, maxDeleteFraction: 0.6 };
const TIGHT = { name: 'tight', repositories: ['tight/**'], keepLastPushed: 1 };

describe('retention over the management API (auth on)', () => {
  let reg: TestRegistry;
  let auth: Auth;
  let work: string;
  const sink = new MemoryAuditSink();
  const metrics = new Metrics({ processMetrics: false });

  async function tokenFor(user: keyof typeof PASSWORDS): Promise<string> {
    const res = await fetch(`${reg.url}/auth/token?service=berth&scope=${encodeURIComponent('registry:retention:*')}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-retention-api-'));
    await addUsers(work);
    auth = await createAuth(
      {
        ...baseConfig,
        enabled: true,
        rules: [
          ...(baseConfig.rules ?? []),
          { registry: 'retention', users: ['alice'], allow: ['*'] },
          { repository: 'api/**', users: ['alice'], allow: ['*'] },
        ],
      },
      { dataDir: work, log: { info() {}, warn() {}, error() {} } },
    );
    reg = await startTestRegistry({
      config: { gc: { enabled: false }, retention: { policies: [POLICY, TIGHT] } },
      deps: {
        authorizer: auth.authorizer,
        plugins: async (app) => app.register(auth.tokenRoutes),
        onRetention: retentionEventRecorder({ audit: new AuditLog(sink), metrics }),
      },
    });
    // Straight into metadata, behind auth: the API's access is what is tested here.
    for (const [i, t] of ['a', 'b', 'c', 'd', 'e'].entries()) {
      await reg.storage.metadata.putManifest(
        'api/app',
        { digest: `sha256:${String(i).repeat(64)}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1, references: [], createdAt: 1000 + i },
        [t],
      );
    }
    for (const [i, t] of ['x', 'y', 'z'].entries()) {
      await reg.storage.metadata.putManifest(
        'tight/app',
        { digest: `sha256:${String(i + 5).repeat(64)}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1, references: [], createdAt: 1000 + i },
        [t],
      );
    }
  });
  after(async () => {
    await reg?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('challenges anonymous callers and refuses users without the retention rule, before reading a body or running anything', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/retention'],
      ['GET', '/api/v1/retention/preview'],
      ['POST', '/api/v1/retention/preview'],
      ['POST', '/api/v1/retention/run'],
    ] as const) {
      const anon = await fetch(`${reg.url}${path}`, { method, ...(method === 'POST' ? { body: '{', headers: { 'content-type': 'application/json' } } : {}) });
      assert.equal(anon.status, 401, `${method} ${path}`);
      assert.match(anon.headers.get('www-authenticate') ?? '', /scope="registry:retention:\*"/);
    }
    const bob = await fetch(`${reg.url}/api/v1/retention/run`, { method: 'POST', headers: { authorization: `Bearer ${await tokenFor('bob')}` } });
    assert.equal(bob.status, 403);
    assert.equal(reg.app.retentionRunner.status().last, undefined);
  });

  it('previews the configured policies and a policy in the body; a bad body is a 400 naming the key', async () => {
    const headers = { authorization: `Bearer ${await tokenFor('alice')}` };
    const res = await fetch(`${reg.url}/api/v1/retention/preview?repository=api/app`, { headers });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { repositories: PreviewEntry[] };
    const entry = body.repositories[0]!;
    assert.ok(entry.policy !== null);
    assert.equal(entry.deleted, 2);
    assert.equal(entry.guard.verdict, 'ok');
    assert.deepEqual(
      entry.tags.filter((t) => t.action === 'delete').map((t) => t.tag),
      ['a', 'b'],
    );

    const changed = await fetch(`${reg.url}/api/v1/retention/preview?repository=api/app`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'one', repositories: ['api/**'], keepLastPushed: 1 }),
    });
    assert.equal(changed.status, 200);
    const verdict = ((await changed.json()) as { repositories: PreviewEntry[] }).repositories[0]!;
    assert.ok(verdict.policy === 'one' && verdict.guard.verdict === 'refused');

    const none = await fetch(`${reg.url}/api/v1/retention/preview?repository=elsewhere`, { headers });
    assert.deepEqual(await none.json(), { repositories: [{ repository: 'elsewhere', policy: null }] });

    const bad = await fetch(`${reg.url}/api/v1/retention/preview`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ policies: [{ name: 'x', repositories: ['**'], keepLastPushed: 0 }] }),
    });
    assert.equal(bad.status, 400);
    const error = (await bad.json()) as { errors: { code: string; message: string }[] };
    assert.equal(error.errors[0]?.code, 'REQUEST_INVALID');
    assert.match(error.errors[0]?.message ?? '', /0\.keepLastPushed/);
    assert.deepEqual(await reg.metadata.listTags('api/app', {}), ['a', 'b', 'c', 'd', 'e']);
  });

  it('runs on request: deletes, shows the status, audits every deletion and counts it', async () => {
    const headers = { authorization: `Bearer ${await tokenFor('alice')}` };
    const started = await fetch(`${reg.url}/api/v1/retention/run`, { method: 'POST', headers });
    assert.equal(started.status, 202);
    await reg.app.retentionRunner.settled();
    assert.deepEqual(await reg.metadata.listTags('api/app', {}), ['c', 'd', 'e']);

    const status = (await (await fetch(`${reg.url}/api/v1/retention`, { headers })).json()) as {
      last: { result: string; summary: { tagsDeleted: number } };
      state: { lastRun: { tagsDeleted: number; cycleComplete: boolean } };
    };
    assert.equal(status.last.result, 'ok');
    assert.equal(status.last.summary.tagsDeleted, 2);
    assert.equal(status.state.lastRun.tagsDeleted, 2);
    assert.equal(status.state.lastRun.cycleComplete, true);

    const lines = sink.events.filter((e) => e.action === 'retention_tag_deleted');
    assert.deepEqual(lines.map((e) => e.tag).sort(), ['a', 'b']);
    for (const e of lines) {
      assert.equal(e.policy, 'keep-three');
      assert.equal(e.actor, 'retention');
      assert.match(e.reason ?? '', /keepLastPushed 3: #[45] most recently pushed/);
    }
    const exposition = await metrics.registry.metrics();
    assert.match(exposition, /^berth_retention_tags_deleted_total 2$/m);
    assert.match(exposition, /^berth_retention_runs_total\{result="ok"\} 1$/m);
    // The other repository's policy would delete 2 of its 3 tags: refused, counted, audited, nothing deleted.
    assert.match(exposition, /^berth_retention_refusals_total\{guard="fraction"\} 1$/m);
    assert.deepEqual(await reg.metadata.listTags('tight/app', {}), ['x', 'y', 'z']);
    const refusal = sink.events.find((e) => e.action === 'retention_refused');
    assert.equal(refusal?.repository, 'tight/app');
    assert.equal(refusal?.policy, 'tight');
    const run = sink.events.find((e) => e.action === 'retention_run');
    assert.equal(run?.retention?.refused, 1);
  });
});
