// Immutable-tag patterns from an external token service, in GitLab's shape (meta.tag_immutable_patterns
// on each access entry), with auth on, on embedded and Redis metadata: the patterns add immutability
// for requests carrying them and never lift a configured rule; an unusable pattern makes the
// repository's tags immutable; the management API shows them and is guarded like pulls.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CryptoKey, SignJWT, exportSPKI, generateKeyPair } from 'jose';
import { type Auth, createAuth } from '../../auth/index.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { usePair, type PairEnvironment } from '../helpers/matrix.js';
import { OCI_MANIFEST, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const ISSUER = 'https://gitlab.example/jwt';

interface ErrorBody {
  errors: Array<{ code: string; message: string }>;
}

function suite(env: PairEnvironment): void {
  describe(`token claim tag_immutable_patterns (${env.pair.title})`, () => {
    let reg: TestRegistry;
    let auth: Auth;
    let work: string;
    let key: CryptoKey;

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-immutable-token-'));
      await addUsers(work);
      const pair = await generateKeyPair('ES256', { extractable: true });
      key = pair.privateKey;
      await writeFile(join(work, 'gitlab.pem'), await exportSPKI(pair.publicKey));
      auth = await createAuth(
        {
          ...baseConfig,
          enabled: true,
          rules: [...(baseConfig.rules ?? []), { registry: 'immutable', users: ['alice'], allow: ['*'] }],
          externalIssuers: [{ issuer: ISSUER, publicKeyFiles: [join(work, 'gitlab.pem')], algorithms: ['ES256'] }],
        },
        { dataDir: work, log: { info() {}, warn() {}, error() {} } },
      );
      reg = await startTestRegistry({
        ...(await env.options()),
        config: { immutableTags: { rules: [{ repositories: 'ext/**', tags: ['v*'] }] }, gc: { enabled: false } },
        deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) },
      });
    });
    after(async () => {
      await reg?.close();
      await auth?.close();
      if (work) await rm(work, { recursive: true, force: true });
    });

    /** A token from the GitLab issuer (ISSUER, `key`) granting `access`. */
    const signToken = async (access: unknown[]) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ access })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer(ISSUER)
        .setAudience('berth')
        .setSubject('gitlab-ci')
        .setIssuedAt(now)
        .setExpirationTime(now + 300)
        .sign(key);
    };
    /** A token as GitLab's Rails signs it for a project's repository. */
    const gitlabToken = async (repo: string, patterns?: unknown) => {
      const meta = { project_path: repo, project_id: 7, root_namespace_id: 3, ...(patterns === undefined ? {} : { tag_immutable_patterns: patterns }) };
      return signToken([{ type: 'repository', name: repo, actions: ['pull', 'push', 'delete'], meta }]);
    };
    const client = (token: string) => new RegistryClient(reg.url, { authorization: `Bearer ${token}` });
    let n = 0;
    const image = async (c: RegistryClient, repo: string) => (await c.pushImage(repo, `build-${++n}`, [64])).manifest;
    const put = (c: RegistryClient, repo: string, tag: string, m: Blob) =>
      c.fetch(`/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: m.data, headers: { 'Content-Type': OCI_MANIFEST } });
    const message = async (r: Response) => ((await r.json()) as ErrorBody).errors[0]?.message ?? '';

    it('refuses overwriting and deleting a tag the token marks immutable, and lets the same digest through', async () => {
      const c = client(await gitlabToken('ext/app', ['^rel-\\d+$']));
      const [a, b] = [await image(c, 'ext/app'), await image(c, 'ext/app')];
      assert.equal((await put(c, 'ext/app', 'rel-1', a)).status, 201);
      const refused = await put(c, 'ext/app', 'rel-1', b);
      assert.equal(refused.status, 403);
      assert.equal(
        await message(refused),
        `tag rel-1 in ext/app is immutable (rule token claim tag_immutable_patterns (^rel-\\d+$)): it points at ${a.digest}; push under a new tag`,
      );
      assert.equal((await put(c, 'ext/app', 'rel-1', a)).status, 201);
      assert.equal((await c.fetch('/v2/ext/app/manifests/rel-1', { method: 'DELETE' })).status, 403);
      assert.equal((await c.fetch(`/v2/ext/app/manifests/${a.digest}`, { method: 'DELETE' })).status, 403);
      // Not matched by the patterns (anchored): mutable.
      assert.equal((await put(c, 'ext/app', 'rel-1x', a)).status, 201);
      assert.equal((await put(c, 'ext/app', 'rel-1x', b)).status, 201);
    });

    it('cannot lift a configured rule: a token whose patterns do not cover v* still cannot move v1', async () => {
      const c = client(await gitlabToken('ext/app', ['^only-this$']));
      const [a, b] = [await image(c, 'ext/app'), await image(c, 'ext/app')];
      assert.equal((await put(c, 'ext/app', 'v1', a)).status, 201);
      const refused = await put(c, 'ext/app', 'v1', b);
      assert.equal(refused.status, 403);
      assert.match(await message(refused), /\(rule immutableTags\.rules\[0\] \(ext\/\*\* v\*\)\)/);
      const none = client(await gitlabToken('ext/app'));
      assert.equal((await put(none, 'ext/app', 'v1', b)).status, 403);
    });

    it('an unusable pattern makes every existing tag of the repository immutable for that token; new tags still push', async () => {
      const c = client(await gitlabToken('ext/strict', ['(?=lookahead)', '^ok$']));
      const [a, b] = [await image(c, 'ext/strict'), await image(c, 'ext/strict')];
      assert.equal((await put(c, 'ext/strict', 'anything', a)).status, 201);
      const refused = await put(c, 'ext/strict', 'anything', b);
      assert.equal(refused.status, 403);
      assert.match(await message(refused), /rule token claim tag_immutable_patterns \(unusable pattern "\(\?=lookahead\)": unsupported group syntax/);
    });

    it('patterns apply to the repository of their access entry only', async () => {
      const token = await signToken([
        { type: 'repository', name: 'ext/free', actions: ['pull', 'push'] },
        { type: 'repository', name: 'ext/locked', actions: ['pull'], meta: { tag_immutable_patterns: ['.*'] } },
      ]);
      const c = client(token);
      const [a, b] = [await image(c, 'ext/free'), await image(c, 'ext/free')];
      assert.equal((await put(c, 'ext/free', 'dev', a)).status, 201);
      assert.equal((await put(c, 'ext/free', 'dev', b)).status, 201);
    });

    it('the API shows the token patterns to their holder; it needs pull on the repository or registry:immutable:*', async () => {
      const c = client(await gitlabToken('ext/app', ['^rel-\\d+$']));
      const res = await c.fetch('/api/v1/immutable-tags?repository=ext/app&tag=rel-1');
      assert.equal(res.status, 200);
      const body = (await res.json()) as { rules: Array<{ source: string; patterns?: string[] }>; tag: { immutable: boolean; rule: string } };
      assert.deepEqual(
        body.rules.map((r) => r.source),
        ['config', 'token'],
      );
      assert.deepEqual(body.rules[1]?.patterns, ['^rel-\\d+$']);
      assert.equal(body.tag.immutable, true);
      assert.equal(body.tag.rule, 'token claim tag_immutable_patterns (^rel-\\d+$)');

      const anonymous = await fetch(`${reg.url}/api/v1/immutable-tags?repository=ext/app`);
      assert.equal(anonymous.status, 401);
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /scope="repository:ext\/app:pull"/);
      assert.equal((await c.fetch('/api/v1/immutable-tags?repository=ext/elsewhere')).status, 401, 'no pull on another repository');

      const q = new URLSearchParams({ service: 'berth', scope: 'registry:immutable:*' });
      const issued = await fetch(`${reg.url}/auth/token?${q}`, {
        headers: { authorization: `Basic ${Buffer.from(`alice:${PASSWORDS.alice}`).toString('base64')}` },
      });
      const admin = client(((await issued.json()) as { token: string }).token);
      const adminView = await admin.fetch('/api/v1/immutable-tags?repository=ext/elsewhere&tag=v2');
      assert.equal(adminView.status, 200);
      assert.deepEqual(((await adminView.json()) as { tag: { immutable: boolean } }).tag, {
        tag: 'v2',
        immutable: true,
        rule: 'immutableTags.rules[0] (ext/** v*)',
      });
    });
  });
}

suite(usePair('memory', 'embedded'));
suite(usePair('memory', 'redis'));
