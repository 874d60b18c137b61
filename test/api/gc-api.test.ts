// The management API's GC endpoints: status with progress, a pass on request, and access with auth on
// (the registry resource `gc`, like `catalog`).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { randomBlob, RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

interface GcStatusBody {
  enabled: boolean;
  complete: boolean;
  queue: { queued: number; due: number };
  running?: unknown;
  last?: { trigger: string; dryRun: boolean; result: string; summary: { blobsDeleted: number; bytesFreed: number } };
}

describe('GC over the management API (auth off)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ config: { gc: { enabled: false, delaySeconds: 0, quarantineSeconds: 0 } } });
  });
  after(async () => reg?.close());

  it('shows the queue, runs a pass on request and reports it', async () => {
    const orphan = randomBlob(2048);
    await new RegistryClient(reg.url).pushBlob('api/gc', orphan);
    const before = (await (await fetch(`${reg.url}/api/v1/gc`)).json()) as GcStatusBody;
    assert.equal(before.complete, true);
    assert.ok(before.queue.queued >= 1, JSON.stringify(before));
    assert.equal(before.last, undefined);

    const dry = await fetch(`${reg.url}/api/v1/gc?dryRun=1`, { method: 'POST' });
    assert.equal(dry.status, 202);
    await reg.app.gcRunner.settled();
    const afterDry = (await (await fetch(`${reg.url}/api/v1/gc`)).json()) as GcStatusBody;
    assert.equal(afterDry.last?.dryRun, true);
    assert.equal(afterDry.last?.summary.blobsDeleted, 1);
    assert.equal((await fetch(`${reg.url}/v2/api/gc/blobs/${orphan.digest}`, { method: 'HEAD' })).status, 200);

    const real = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST' });
    assert.equal(real.status, 202);
    await reg.app.gcRunner.settled();
    const done = (await (await fetch(`${reg.url}/api/v1/gc`)).json()) as GcStatusBody;
    assert.equal(done.last?.trigger, 'request');
    assert.equal(done.last?.result, 'ok');
    assert.equal(done.last?.summary.bytesFreed, orphan.size);
    assert.equal((await fetch(`${reg.url}/v2/api/gc/blobs/${orphan.digest}`, { method: 'HEAD' })).status, 404);
  });
});

describe('GC over the management API (auth on)', () => {
  let reg: TestRegistry;
  let auth: Auth;
  let work: string;

  async function tokenFor(user: keyof typeof PASSWORDS): Promise<string> {
    const res = await fetch(`${reg.url}/auth/token?service=berth&scope=${encodeURIComponent('registry:gc:*')}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-gc-api-'));
    await addUsers(work);
    auth = await createAuth(
      { ...baseConfig, enabled: true, rules: [...(baseConfig.rules ?? []), { registry: 'gc', users: ['alice'], allow: ['*'] }] },
      { dataDir: work, log: { info() {}, warn() {}, error() {} } },
    );
    reg = await startTestRegistry({
      config: { gc: { enabled: false } },
      deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) },
    });
  });
  after(async () => {
    await reg?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('challenges anonymous callers and refuses users without the gc rule, before running anything', async () => {
    const anon = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST' });
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /scope="registry:gc:\*"/);
    const bob = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', headers: { authorization: `Bearer ${await tokenFor('bob')}` } });
    assert.equal(bob.status, 403);
    assert.equal(reg.app.gcRunner.status().running, undefined);
    assert.equal(reg.app.gcRunner.status().last, undefined);
  });

  it('lets an operator with the gc rule read the status and start a pass', async () => {
    const token = await tokenFor('alice');
    const status = await fetch(`${reg.url}/api/v1/gc`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(status.status, 200);
    assert.equal(((await status.json()) as GcStatusBody).complete, true);
    const started = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(started.status, 202);
    await reg.app.gcRunner.settled();
    assert.equal(reg.app.gcRunner.status().last?.result, 'ok');
  });
});
