// GET /api/v1/status (docs/management-api.md): the dashboard. An operator allowed every registry-wide
// resource sees every section, filled from the features' own status; a user without any sees only
// who it is; no credentials with auth on is the Bearer challenge; features that are off say so.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

type Body = Record<string, Record<string, unknown>>;

const SECTIONS = ['gc', 'retention', 'quotas', 'events', 'replication'] as const;
const OPERATOR_RESOURCES = ['gc', 'retention', 'quotas', 'events', 'replication'];

async function status(url: string, headers: Record<string, string> = {}): Promise<Body> {
  const res = await fetch(`${url}/api/v1/status`, { headers });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as Body;
}

/** A replication rule's last pass as the shared state stores it (times in ms). */
function lastRunOf(clock: number) {
  return { holder: 'h', startedAt: clock - 60_000, finishedAt: clock - 50_000, result: 'partial', repositories: 1, tags: {}, failures: 1, bytes: 0 };
}

describe('GET /api/v1/status with auth on', () => {
  let reg: TestRegistry;
  let auth: Auth;
  let work: string;
  // The app's clock: fixed, so "next" and the replication lag are exact.
  const clock = Date.now();
  const GC_INTERVAL = 600;
  const RETENTION_INTERVAL = 3600;

  async function tokenFor(user: keyof typeof PASSWORDS, scope?: string): Promise<string> {
    const query = `service=berth${scope === undefined ? '' : `&scope=${encodeURIComponent(scope)}`}`;
    const res = await fetch(`${reg.url}/auth/token?${query}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }
  const bearer = async (user: keyof typeof PASSWORDS, scope?: string) => ({ authorization: `Bearer ${await tokenFor(user, scope)}` });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-api-status-'));
    await addUsers(work);
    const authConfig = {
      ...baseConfig,
      enabled: true,
      rules: [...(baseConfig.rules ?? []), { registry: OPERATOR_RESOURCES, users: ['alice'], allow: ['*'] }],
    };
    auth = await createAuth(authConfig, { dataDir: work, log: { info() {}, warn() {}, error() {} } });
    reg = await startTestRegistry({
      config: {
        auth: authConfig,
        gc: { enabled: true, intervalSeconds: GC_INTERVAL },
        retention: { enabled: true, intervalSeconds: RETENTION_INTERVAL, policies: [{ name: 'team-latest', repositories: ['team/**'], keepLastPushed: 1 }] },
        quotas: { rules: [{ namespace: 'team', limitBytes: 1_000_000 }] },
        events: { deliver: false, endpoints: [{ name: 'hook', url: 'http://127.0.0.1:9/hook' }] },
        replication: {
          registries: [{ name: 'peer', urls: ['http://127.0.0.1:9'] }],
          rules: [
            { name: 'to-peer', direction: 'push', registry: 'peer', repositories: ['team/**'], reconcileSeconds: 0, onPush: false },
            { name: 'paused', direction: 'push', registry: 'peer', repositories: ['other/**'], reconcileSeconds: 0, onPush: false, enabled: false },
          ],
        },
      },
      deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes), now: () => clock },
    });
    const alice = new RegistryClient(reg.url, await bearer('alice', 'repository:team/app:push,pull'));
    await alice.pushImage('team/app', 'v1', [1000]);
    await alice.pushImage('team/app', 'v2', [2000]);
    const other = new RegistryClient(reg.url, await bearer('alice', 'repository:alice/tool:push,pull'));
    await other.pushImage('alice/tool', 'latest', [3000]);
    // A finished GC pass and retention run, so the sections have a last one to show.
    assert.ok(reg.app.gcRunner.trigger('request'));
    await reg.app.gcRunner.settled();
    assert.ok(reg.app.retentionRunner.trigger('request'));
    await reg.app.retentionRunner.settled();
    // A replication rule with a pass behind it and one artifact failing for two minutes.
    assert.ok(await reg.metadata.replication.updateRuleState('to-peer', 0, JSON.stringify({ lastRun: lastRunOf(clock) })));
    await reg.metadata.replication.putArtifact(
      'to-peer',
      'team/app:v1',
      JSON.stringify({ state: 'failed', sourceRepository: 'team/app', behindSince: clock - 120_000, error: 'peer unreachable' }),
    );
  });
  after(async () => {
    await reg?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('answers no credentials with 401 and the Bearer challenge', async () => {
    const res = await fetch(`${reg.url}/api/v1/status`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/auth\/token",service="berth"/);
    const bad = await fetch(`${reg.url}/api/v1/status`, { headers: { authorization: 'Bearer not.a.token' } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
  });

  it('shows a user without registry-wide rights only itself; every section is {"access": false}', async () => {
    const body = await status(reg.url, await bearer('carol'));
    assert.deepEqual(body.caller, { subject: 'carol', kind: 'user', pages: [] });
    for (const name of SECTIONS) assert.deepEqual(body[name], { access: false }, name);
    assert.deepEqual(Object.keys(body).sort(), ['caller', ...SECTIONS].sort());
  });

  it('fills every section for an operator, from the same status the feature routes answer', async () => {
    // A token without scopes: the live rules say what alice may open.
    const headers = await bearer('alice');
    const body = await status(reg.url, headers);
    assert.deepEqual(body.caller, { subject: 'alice', kind: 'user', pages: ['catalog', ...OPERATOR_RESOURCES] });

    const gc = body.gc as { enabled: boolean; complete: boolean; queue: unknown; last: { result: string; finishedAt: string; summary: object }; next: string };
    assert.equal(gc.enabled, true);
    assert.equal(gc.complete, true);
    assert.equal(gc.last.result, 'ok');
    assert.equal(gc.last.finishedAt, new Date(clock).toISOString());
    for (const field of ['manifestsDeleted', 'blobsDeleted', 'bytesFreed']) assert.equal(typeof (gc.last.summary as Record<string, unknown>)[field], 'number');
    assert.equal(gc.next, new Date(clock + GC_INTERVAL * 1000).toISOString());
    // The gc route answers the same (plus the next pass, which it now shows too).
    const gcRoute = await fetch(`${reg.url}/api/v1/gc`, { headers: await bearer('alice', 'registry:gc:*') });
    assert.deepEqual({ enabled: true, ...((await gcRoute.json()) as object) }, gc);

    const retention = body.retention as {
      enabled: boolean;
      policies: number;
      lastRun: { tagsDeleted: number; startedAt: string };
      last: { result: string };
      next: string;
    };
    assert.equal(retention.enabled, true);
    assert.equal(retention.policies, 1);
    assert.equal(retention.last.result, 'ok');
    assert.equal(retention.lastRun.tagsDeleted, 1);
    assert.equal(retention.lastRun.startedAt, new Date(clock).toISOString());
    assert.equal(retention.next, new Date(clock + RETENTION_INTERVAL * 1000).toISOString());

    const quotas = body.quotas as {
      enabled: boolean;
      namespaces: number;
      complete: boolean;
      totals: { usedBytes: number; limitedNamespaces: number; overLimit: number };
      top: Array<{ namespace: string; usedBytes: number; limitBytes?: number; percent?: number }>;
    };
    assert.equal(quotas.enabled, true);
    assert.equal(quotas.complete, true);
    assert.deepEqual(
      quotas.top.map((t) => t.namespace),
      ['team', 'alice'],
    );
    const team = quotas.top[0] as (typeof quotas.top)[number];
    assert.ok(team.usedBytes >= 3000, String(team.usedBytes));
    assert.equal(team.limitBytes, 1_000_000);
    assert.equal(team.percent, Math.round(team.usedBytes / 1000) / 10);
    assert.equal(quotas.top[1]?.limitBytes, undefined);
    assert.equal(
      quotas.totals.usedBytes,
      quotas.top.reduce((s, t) => s + t.usedBytes, 0),
    );
    assert.equal(quotas.totals.limitedNamespaces, 1);
    assert.equal(quotas.totals.overLimit, 0);
    // The quota route's figures for the namespace are the same.
    const quotaRoute = await fetch(`${reg.url}/api/v1/quotas?namespace=team`, { headers: await bearer('alice', 'registry:quotas:*') });
    assert.equal(((await quotaRoute.json()) as { usedBytes: number }).usedBytes, team.usedBytes);

    const events = body.events as { enabled: boolean; logged: number; endpoints: Array<{ name: string; deadLetters: number }> };
    assert.equal(events.enabled, true);
    assert.ok(events.logged > 0);
    assert.deepEqual(
      events.endpoints.map((e) => [e.name, e.deadLetters]),
      [['hook', 0]],
    );
    const eventsRoute = await fetch(`${reg.url}/api/v1/events/status`, { headers: await bearer('alice', 'registry:events:*') });
    assert.deepEqual({ enabled: true, ...((await eventsRoute.json()) as object) }, events);

    const replication = body.replication as { enabled: boolean; rules: Array<Record<string, unknown>> };
    assert.equal(replication.enabled, true);
    const [toPeer, paused] = replication.rules as [Record<string, unknown>, Record<string, unknown>];
    assert.equal(toPeer.name, 'to-peer');
    assert.equal(toPeer.running, false);
    assert.equal(toPeer.lagSeconds, 120);
    assert.equal(toPeer.failures, 1);
    assert.deepEqual(toPeer.lastPass, {
      ...lastRunOf(clock),
      startedAt: new Date(clock - 60_000).toISOString(),
      finishedAt: new Date(clock - 50_000).toISOString(),
    });
    assert.deepEqual(paused, { name: 'paused', direction: 'push', registry: 'peer', enabled: false });
  });
});

describe('GET /api/v1/status with auth off and the optional features off', () => {
  let reg: TestRegistry;

  before(async () => {
    reg = await startTestRegistry({ config: { gc: { enabled: false }, events: { enabled: false } } });
  });
  after(async () => reg?.close());

  it('shows every page to the anonymous caller and {"enabled": false} for each feature that is off', async () => {
    const body = await status(reg.url);
    assert.deepEqual(body, {
      caller: { subject: '', kind: 'anonymous', pages: ['catalog', 'stats', 'immutable', ...OPERATOR_RESOURCES] },
      gc: { enabled: false },
      retention: { enabled: false },
      quotas: { enabled: false },
      events: { enabled: false },
      replication: { enabled: false },
    });
  });
});
