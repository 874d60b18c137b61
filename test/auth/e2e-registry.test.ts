import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type Auth, createAuth } from '../../auth/index.js';
import { createRobot } from '../../auth/robots.js';
import { type LayoutDescriptor, OciLayout } from '../helpers/oci-layout.js';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { PASSWORDS, addUsers, baseConfig } from './fixtures.js';

const run = promisify(execFile);

/**
 * The real registry app (buildApp) with auth wired in as main.ts does it, driven by skopeo through
 * the whole token flow, plus raw requests for what skopeo cannot show (mount leaks).
 */
describe('auth end to end: skopeo and the registry routes', () => {
  let reg: TestRegistry;
  let auth: Auth;
  let work: string;
  let host: string;
  let robotSecret: string;
  let image: LayoutDescriptor;
  let layout: OciLayout;

  async function skopeo(...args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run('skopeo', args, { timeout: 120_000, env: { ...process.env, REGISTRY_AUTH_FILE: join(work, 'auth.json') } });
      return { ok: true, stdout, stderr };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
    }
  }
  const push = (creds: string | undefined, ref: string) =>
    skopeo(
      'copy',
      '--dest-tls-verify=false',
      '--preserve-digests',
      ...(creds ? ['--dest-creds', creds] : ['--dest-no-creds']),
      `oci:${layout.dir}:v1`,
      `docker://${host}/${ref}`,
    );
  const inspect = (creds: string | undefined, ref: string) =>
    skopeo('inspect', '--tls-verify=false', ...(creds ? ['--creds', creds] : ['--no-creds']), `docker://${host}/${ref}`);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-auth-e2e-'));
    await addUsers(work);
    robotSecret = (await createRobot(join(work, 'auth', 'robots.json'), { name: 'ci', repositories: ['builds/**'], actions: ['pull', 'push'] })).secret;
    auth = await createAuth(
      {
        ...baseConfig,
        enabled: true,
        rules: [...(baseConfig.rules ?? []), { repository: 'public/**', users: ['alice'], allow: ['push'] }],
      },
      { dataDir: work, log: { info() {}, warn() {}, error() {} } },
    );
    reg = await startTestRegistry({
      deps: {
        authorizer: auth.authorizer,
        plugins: async (app) => {
          await app.register(auth.tokenRoutes);
        },
      },
    });
    host = reg.url.replace('http://', '');
    layout = await new OciLayout(join(work, 'src')).init();
    image = await layout.addImage([30_000, 2_000]);
    await layout.tag(image, 'v1');
  });
  after(async () => {
    await reg?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pushes and pulls with credentials through the token flow', async () => {
    const pushed = await push(`alice:${PASSWORDS.alice}`, 'alice/app:v1');
    assert.ok(pushed.ok, pushed.stderr);
    const seen = await inspect(`alice:${PASSWORDS.alice}`, 'alice/app:v1');
    assert.ok(seen.ok, seen.stderr);
    assert.equal((JSON.parse(seen.stdout) as { Digest: string }).Digest, image.digest);
  });

  it("refuses without credentials, with a wrong password, and outside the caller's rights", async () => {
    const anon = await inspect(undefined, 'alice/app:v1');
    assert.equal(anon.ok, false);
    assert.match(anon.stderr, /unauthorized|authentication required|denied/i);
    const wrong = await inspect('alice:not-the-password', 'alice/app:v1');
    assert.equal(wrong.ok, false);
    const bob = await push(`bob:${PASSWORDS.bob}`, 'alice/app:evil');
    assert.equal(bob.ok, false);
    assert.match(bob.stderr, /denied|unauthorized|403/i);
    const anonPush = await push(undefined, 'public/base:v1');
    assert.equal(anonPush.ok, false);
  });

  it('lets anonymous callers pull where a rule allows it', async () => {
    const pushed = await push(`alice:${PASSWORDS.alice}`, 'public/base:v1');
    assert.ok(pushed.ok, pushed.stderr);
    const pulled = await skopeo('copy', '--src-tls-verify=false', '--src-no-creds', `docker://${host}/public/base:v1`, `oci:${join(work, 'out')}:v1`);
    assert.ok(pulled.ok, pulled.stderr);
  });

  it('a CI robot pushes within its repositories only', async () => {
    const ok = await push(`robot+ci:${robotSecret}`, 'builds/app:1');
    assert.ok(ok.ok, ok.stderr);
    const outside = await push(`robot+ci:${robotSecret}`, 'alice/app:robot');
    assert.equal(outside.ok, false);
  });

  async function token(user: 'alice' | 'bob', scopes: string[]): Promise<string> {
    const q = new URLSearchParams({ service: 'berth' });
    for (const s of scopes) q.append('scope', s);
    const res = await fetch(`${reg.url}/auth/token?${q}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    return ((await res.json()) as { token: string }).token;
  }

  it('never mounts a blob from a repository the caller cannot pull', async () => {
    const layer = new OciLayout(join(work, 'secret'));
    await layer.init();
    const secretImage = await layer.addImage([4_000]);
    await layer.tag(secretImage, 'v1');
    const bobPush = await skopeo(
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `bob:${PASSWORDS.bob}`,
      `oci:${layer.dir}:v1`,
      `docker://${host}/secret/x:v1`,
    );
    assert.ok(bobPush.ok, bobPush.stderr);
    const manifest = (await (
      await fetch(`${reg.url}/v2/secret/x/manifests/v1`, {
        headers: { authorization: `Bearer ${await token('bob', ['repository:secret/x:pull'])}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).json()) as { layers: Array<{ digest: string }> };
    const secretLayer = manifest.layers[0]?.digest as string;

    const aliceToken = await token('alice', ['repository:alice/leak:pull,push', 'repository:secret/x:pull']);
    const auto = await fetch(`${reg.url}/v2/alice/leak/blobs/uploads/?mount=${secretLayer}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceToken}` },
    });
    assert.notEqual(auto.status, 201, 'automatic mount must not use secret/x');
    const explicit = await fetch(`${reg.url}/v2/alice/leak/blobs/uploads/?mount=${secretLayer}&from=secret/x`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceToken}` },
    });
    assert.notEqual(explicit.status, 201, 'explicit mount from secret/x without pull on it');
    assert.ok([202, 401, 403].includes(explicit.status), `status ${explicit.status}`);
    const head = await fetch(`${reg.url}/v2/alice/leak/blobs/${secretLayer}`, { method: 'HEAD', headers: { authorization: `Bearer ${aliceToken}` } });
    assert.equal(head.status, 404, 'the blob is not linked into alice/leak');

    const appManifest = (await (
      await fetch(`${reg.url}/v2/alice/app/manifests/v1`, {
        headers: { authorization: `Bearer ${await token('alice', ['repository:alice/app:pull'])}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).json()) as { layers: Array<{ digest: string }> };
    const own = appManifest.layers[0]?.digest as string;
    const control = await fetch(`${reg.url}/v2/alice/leak/blobs/uploads/?mount=${own}`, { method: 'POST', headers: { authorization: `Bearer ${aliceToken}` } });
    assert.equal(control.status, 201, 'control: automatic mount from a repository alice may pull');
  });
});
