// Quotas as people meet them: skopeo copying into a full namespace sees the message, the API behind
// auth (registry:quotas:*), and `berth quotas` reading the stores.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type Auth, createAuth } from '../../auth/index.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { runBerth, writeCliConfig } from '../helpers/berth-cli.js';
import { OciLayout } from '../helpers/oci-layout.js';
import { randomBlob, RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);

describe('quotas with real clients and the CLI', () => {
  let reg: TestRegistry;
  let work: string;
  before(async () => {
    reg = await startTestRegistry({
      driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }),
      config: { quotas: { rules: [{ namespace: 'tiny', limitBytes: 50_000 }] } },
    });
    work = await mkdtemp(join(tmpdir(), 'berth-quota-clients-'));
  });
  after(async () => {
    await reg?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a skopeo copy into a full namespace fails with the quota message', async () => {
    await new RegistryClient(reg.url).pushBlob('tiny/filler', randomBlob(50_000));
    const layout = await new OciLayout(join(work, 'src')).init();
    await layout.tag(await layout.addImage([20_000]), 'v1');
    const host = reg.url.replace('http://', '');
    const failed = await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.dir}:v1`, `docker://${host}/tiny/app:v1`], { timeout: 120_000 }).then(
      () => undefined,
      (err: { stderr?: string }) => err.stderr ?? '',
    );
    assert.ok(failed !== undefined, 'skopeo copy succeeded into a full namespace');
    assert.match(failed, /namespace tiny is over its storage quota: 48\.8 KiB used of 48\.8 KiB \(rule tiny\)/);
  });

  it('berth quotas prints each namespace, and one as JSON', async () => {
    await reg.app.close();
    const config = await writeCliConfig(reg.dir, { quotas: { rules: [{ namespace: 'tiny', limitBytes: 50000 }] } }, join(work, 'berth.yaml'));
    // The test registry's store stays open in this process; lmdb allows a second process on it.
    const text = await runBerth(['quotas', '--config', config]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^tiny {2}48\.8 KiB of 48\.8 KiB \(100%, rule tiny\)/m);
    const json = await runBerth(['quotas', '--config', config, '--namespace', 'tiny', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { usedBytes: number; limitBytes: number; exclusiveBytes: number };
    assert.deepEqual([report.usedBytes, report.limitBytes, report.exclusiveBytes], [50_000, 50_000, 50_000]);
    const bad = await runBerth(['quotas', '--namespace', 'a/b']);
    assert.equal(bad.code, 2);
  });
});

describe('the quota API behind auth', () => {
  let reg: TestRegistry;
  let auth: Auth;
  let work: string;

  async function tokenFor(user: keyof typeof PASSWORDS): Promise<string> {
    const res = await fetch(`${reg.url}/auth/token?service=berth&scope=${encodeURIComponent('registry:quotas:*')}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-quota-api-'));
    await addUsers(work);
    auth = await createAuth(
      { ...baseConfig, enabled: true, rules: [...(baseConfig.rules ?? []), { registry: 'quotas', users: ['alice'], allow: ['*'] }] },
      { dataDir: work, log: { info() {}, warn() {}, error() {} } },
    );
    reg = await startTestRegistry({
      config: { quotas: { rules: [{ namespace: 'team', limitBytes: '1GiB' }] } },
      deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) },
    });
  });
  after(async () => {
    await reg?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('challenges anonymous callers, refuses users without the quotas rule and answers an operator', async () => {
    const anon = await fetch(`${reg.url}/api/v1/quotas`);
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /scope="registry:quotas:\*"/);
    const bob = await fetch(`${reg.url}/api/v1/quotas`, { headers: { authorization: `Bearer ${await tokenFor('bob')}` } });
    assert.equal(bob.status, 403);
    const alice = await fetch(`${reg.url}/api/v1/quotas?namespace=team`, { headers: { authorization: `Bearer ${await tokenFor('alice')}` } });
    assert.equal(alice.status, 200);
    assert.deepEqual(await alice.json(), {
      namespace: 'team',
      rule: 'team',
      limitBytes: 1024 ** 3,
      usedBytes: 0,
      digests: 0,
      reservedBytes: 0,
      exclusiveBytes: 0,
      sharedBytes: 0,
      exact: true,
    });
    const bad = await fetch(`${reg.url}/api/v1/quotas?namespace=a/b`, { headers: { authorization: `Bearer ${await tokenFor('alice')}` } });
    assert.equal(bad.status, 400);
  });
});
