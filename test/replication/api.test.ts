// Replication over the management API, with auth on (the registry resource `replication`, like
// `retention`): a pull rule on A copies from B on request; status, paged artifacts, a run's 202/409/404,
// and the pass in the metrics and the audit log.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { AuditLog, MemoryAuditSink } from '../../server/operations/audit.js';
import { replicationRecorder } from '../../server/operations/event-recorders.js';
import { Metrics } from '../../server/operations/metrics.js';
import { ReplicationMetrics } from '../../server/operations/replication-metrics.js';
import type { ReplicationObservation, RuleStatus } from '../../server/registry/replication/service.js';
import type { ArtifactStatus } from '../../server/registry/replication/status.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { ObservationLog } from './helpers.js';

/** A loopback proxy to `target` that holds every request while closed, so a pass stays running until the test opens it. */
async function gatedProxy(target: string): Promise<{ url: string; close(): void; open(): void; seen(): Promise<void>; stop(): Promise<void> }> {
  const upstream = new URL(target);
  let release: () => void = () => undefined;
  let gate: Promise<void> = Promise.resolve();
  let firstSeen: () => void = () => undefined;
  let seenOne = new Promise<void>((resolve) => (firstSeen = resolve));
  const server = http.createServer((req, res) => {
    firstSeen();
    void gate.then(() => {
      const forward = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      forward.on('error', () => res.destroy());
      req.pipe(forward);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      gate = new Promise((resolve) => (release = resolve));
      seenOne = new Promise<void>((resolve) => (firstSeen = resolve));
    },
    open: () => release(),
    seen: () => seenOne,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('replication over the management API (auth on)', () => {
  let b: TestRegistry;
  let a: TestRegistry;
  let proxy: Awaited<ReturnType<typeof gatedProxy>>;
  let auth: Auth;
  let work: string;
  const sink = new MemoryAuditSink();
  const metrics = new Metrics({ processMetrics: false });
  const log = new ObservationLog();
  const seen = (match: (o: ReplicationObservation) => boolean) => log.seen(match);

  async function tokenFor(user: keyof typeof PASSWORDS): Promise<string> {
    const res = await fetch(`${a.url}/auth/token?service=berth&scope=${encodeURIComponent('registry:replication:*')}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  before(async () => {
    b = await startTestRegistry();
    proxy = await gatedProxy(b.url);
    const client = new RegistryClient(b.url);
    for (const tag of ['v1', 'v2', 'v3']) await client.pushImage('team/app', tag);
    work = await mkdtemp(join(tmpdir(), 'berth-replication-api-'));
    await addUsers(work);
    auth = await createAuth(
      { ...baseConfig, enabled: true, rules: [...(baseConfig.rules ?? []), { registry: 'replication', users: ['alice'], allow: ['*'] }] },
      { dataDir: work, log: { info() {}, warn() {}, error() {} } },
    );
    const record = replicationRecorder({ audit: new AuditLog(sink), metrics: new ReplicationMetrics(metrics.registry, ['from-b']) });
    a = await startTestRegistry({
      config: {
        gc: { enabled: false },
        replication: {
          registries: [{ name: 'b', urls: [proxy.url], timeoutSeconds: 10 }],
          rules: [
            { name: 'from-b', direction: 'pull', registry: 'b', repositories: ['team/**'], reconcileSeconds: 0 },
            { name: 'off', direction: 'pull', registry: 'b', repositories: ['other/**'], reconcileSeconds: 0, enabled: false },
          ],
        },
      },
      deps: {
        authorizer: auth.authorizer,
        plugins: async (app) => app.register(auth.tokenRoutes),
        onReplication: (o) => {
          record(o);
          log.record(o);
        },
      },
    });
  });
  after(async () => {
    proxy?.open();
    await a?.close();
    await auth?.close();
    await proxy?.stop();
    await b?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('challenges anonymous callers and refuses users without the replication rule, running nothing', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/replication'],
      ['GET', '/api/v1/replication/rules/from-b'],
      ['POST', '/api/v1/replication/rules/from-b/run'],
    ] as const) {
      const anon = await fetch(`${a.url}${path}`, { method });
      assert.equal(anon.status, 401, `${method} ${path}`);
      assert.match(anon.headers.get('www-authenticate') ?? '', /scope="registry:replication:\*"/);
      const bob = await fetch(`${a.url}${path}`, { method, headers: { authorization: `Bearer ${await tokenFor('bob')}` } });
      assert.equal(bob.status, 403, `${method} ${path}`);
    }
    assert.equal(a.app.replication.service.isRunning('from-b'), false);
  });

  it('starts a pass: 202, 409 while it runs, 404 for an unknown or disabled rule', async () => {
    const headers = { authorization: `Bearer ${await tokenFor('alice')}` };
    proxy.close();
    const started = await fetch(`${a.url}/api/v1/replication/rules/from-b/run`, { method: 'POST', headers });
    assert.equal(started.status, 202);
    assert.deepEqual(await started.json(), { started: true });
    await proxy.seen();
    const again = await fetch(`${a.url}/api/v1/replication/rules/from-b/run`, { method: 'POST', headers });
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as { started: boolean }).started, false);
    const running = (await (await fetch(`${a.url}/api/v1/replication`, { headers })).json()) as { rules: { running?: boolean }[] };
    assert.equal(running.rules[0]?.running, true);
    proxy.open();
    await seen((o) => o.kind === 'lag' && o.rule === 'from-b');
    for (const rule of ['nope', 'off']) {
      const res = await fetch(`${a.url}/api/v1/replication/rules/${rule}/run`, { method: 'POST', headers });
      assert.equal(res.status, 404, rule);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]?.code, 'NOT_FOUND');
      assert.match(body.errors[0]?.message ?? '', rule === 'off' ? /disabled/ : /no replication rule "nope"/);
    }
  });

  it('lists every rule, the enabled ones with their status after the pass', async () => {
    const headers = { authorization: `Bearer ${await tokenFor('alice')}` };
    const res = await fetch(`${a.url}/api/v1/replication`, { headers });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { rules: (Record<string, unknown> & { status?: RuleStatus })[] };
    assert.equal(body.rules.length, 2);
    const [on, off] = body.rules;
    assert.deepEqual(
      { name: on?.name, direction: on?.direction, registry: on?.registry, enabled: on?.enabled, onPush: on?.onPush, reconcileSeconds: on?.reconcileSeconds },
      { name: 'from-b', direction: 'pull', registry: 'b', enabled: true, onPush: false, reconcileSeconds: 0 },
    );
    assert.equal(on?.status?.state.lastRun?.result, 'ok');
    assert.equal(on?.status?.state.lastRun?.tags.copied, 3);
    assert.deepEqual(on?.status?.artifacts, { synced: 3 });
    assert.equal(on?.status?.lagSeconds, 0);
    assert.deepEqual(on?.status?.behind, []);
    assert.deepEqual(off, { name: 'off', direction: 'pull', registry: 'b', enabled: false, onPush: false, reconcileSeconds: 0 });
  });

  it('pages a rule’s artifacts with a Link header, filters them by state, and refuses bad parameters', async () => {
    const headers = { authorization: `Bearer ${await tokenFor('alice')}` };
    const first = await fetch(`${a.url}/api/v1/replication/rules/from-b?n=2`, { headers });
    assert.equal(first.status, 200);
    const page1 = (await first.json()) as RuleStatus & { counts: Record<string, number>; artifacts: ArtifactStatus[] };
    assert.deepEqual(
      page1.artifacts.map((x) => [x.key, x.state]),
      [
        ['team/app:v1', 'synced'],
        ['team/app:v2', 'synced'],
      ],
    );
    assert.deepEqual(page1.counts, { synced: 3 });
    assert.equal(page1.state.lastRun?.result, 'ok');
    const link = first.headers.get('link') ?? '';
    assert.equal(link, `</api/v1/replication/rules/from-b?n=2&last=${encodeURIComponent('team/app:v2')}>; rel="next"`);
    const next = await fetch(`${a.url}${link.slice(1, link.indexOf('>'))}`, { headers });
    const page2 = (await next.json()) as { artifacts: ArtifactStatus[] };
    assert.deepEqual(
      page2.artifacts.map((x) => x.key),
      ['team/app:v3'],
    );
    assert.equal(next.headers.get('link'), null);

    const synced = (await (await fetch(`${a.url}/api/v1/replication/rules/from-b?state=synced&n=5`, { headers })).json()) as { artifacts: ArtifactStatus[] };
    assert.equal(synced.artifacts.length, 3);
    const failed = (await (await fetch(`${a.url}/api/v1/replication/rules/from-b?state=failed`, { headers })).json()) as { artifacts: ArtifactStatus[] };
    assert.deepEqual(failed.artifacts, []);
    for (const [query, code] of [
      ['state=broken', 'REQUEST_INVALID'],
      ['n=many', 'PAGINATION_NUMBER_INVALID'],
      ['n=100000', 'PAGINATION_NUMBER_INVALID'],
    ] as const) {
      const res = await fetch(`${a.url}/api/v1/replication/rules/from-b?${query}`, { headers });
      assert.equal(res.status, 400, query);
      assert.equal(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code, code, query);
    }
    const unknown = await fetch(`${a.url}/api/v1/replication/rules/nope`, { headers });
    assert.equal(unknown.status, 404);
  });

  it('counts the pass in the metrics and audits each tag copied and the pass, as the rule', async () => {
    const text = await metrics.exposition();
    assert.match(text, /^berth_replication_tags_total\{rule="from-b",outcome="copied",via="reconcile"\} 3$/m);
    assert.match(text, /^berth_replication_passes_total\{rule="from-b",result="ok"\} 1$/m);
    assert.match(text, /^berth_replication_passes_total\{rule="from-b",result="failed"\} 0$/m);
    assert.match(text, /^berth_replication_lag_seconds\{rule="from-b"\} 0$/m);
    assert.match(text, /^berth_replication_behind_artifacts\{rule="from-b"\} 0$/m);
    assert.match(text, /^berth_replication_sent_bytes_total\{rule="from-b"\} [1-9]\d*$/m);
    const copied = sink.events.filter((e) => e.action === 'replication_tag_copied');
    assert.deepEqual(
      copied.map((e) => [e.actor, e.actorKind, e.rule, e.repository, e.tag, e.reason]).sort(),
      ['v1', 'v2', 'v3'].map((t) => ['replication:from-b', 'system', 'from-b', 'team/app', t, 'reconcile']),
    );
    assert.ok(copied.every((e) => e.digest?.startsWith('sha256:')));
    const passes = sink.events.filter((e) => e.action === 'replication_pass');
    assert.equal(passes.length, 1);
    assert.deepEqual({ ...passes[0]?.replication, bytes: 0 }, { result: 'ok', repositories: 1, tags: { copied: 3 }, failures: 0, bytes: 0 });
    assert.equal(sink.events.filter((e) => e.action.startsWith('replication_')).length, 4);
  });
});
