import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { checkTemplate, parseTemplate, tagsToForward } from '../../recipes/deploy-request.js';
import { parseCloudEvent, type BerthCloudEvent } from '../../recipes/hook-receiver.js';
import { parseConfig } from '../../server/config.js';
import { blob } from '../helpers/oci.js';
import { berthEvent, postEvent, startRecipe, type RecipeProcess } from '../helpers/recipes.js';
import { type ScratchDir, makeScratchDir } from '../helpers/scratch.js';

const DOC = fileURLToPath(new URL('../../../docs/events-recipes.md', import.meta.url));
const SECRET = 'deploy-hook-test-secret';
const REGISTRY_HOST = 'registry.example.com';

interface CodeBlock {
  lang: string;
  text: string;
}

/** Fenced code blocks, also those indented inside list items. */
function codeBlocks(markdown: string): CodeBlock[] {
  const out: CodeBlock[] = [];
  for (const m of markdown.matchAll(/^( *)```(\w*)\n([\s\S]*?)^\1```/gm)) {
    const indent = (m[1] as string).length;
    out.push({ lang: m[2] as string, text: (m[3] as string).replace(new RegExp(`^ {0,${indent}}`, 'gm'), '') });
  }
  return out;
}

type Endpoint = Record<string, unknown> & { name: string; url: string; actions?: string[]; tags?: string[]; headers?: Record<string, unknown> };

describe('deploy recipe: the documented configuration', () => {
  let blocks: CodeBlock[];
  let endpoints: Array<{ title: string; endpoint: Endpoint }>;

  before(async () => {
    blocks = codeBlocks(await readFile(DOC, 'utf8'));
    endpoints = blocks
      .filter((b) => b.lang === 'yaml' && b.text.startsWith('# berth.yaml'))
      .flatMap((b) => {
        const doc = parseYaml(b.text) as { events?: { endpoints?: Endpoint[] } };
        assert.deepEqual(Object.keys(doc), ['events'], b.text);
        assert.deepEqual(Object.keys(doc.events ?? {}), ['endpoints'], b.text);
        return (doc.events?.endpoints ?? []).map((endpoint) => ({ title: b.text.split('\n')[0] as string, endpoint }));
      });
  });

  it('every endpoint block parses, with known keys only', () => {
    assert.deepEqual(
      endpoints.map((e) => e.title),
      ['# berth.yaml: deploy endpoint, straight to CI', '# berth.yaml: deploy endpoint, through recipes/deploy-hook.ts', '# berth.yaml: scan endpoint'],
    );
    for (const { title, endpoint } of endpoints) {
      // The real schema: an unknown or misspelt key, or a bad value, fails here.
      assert.doesNotThrow(() => parseConfig({ events: { endpoints: [endpoint] } }), title);
      assert.match(endpoint.name, /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/);
      assert.ok(['http:', 'https:'].includes(new URL(endpoint.url).protocol), title);
      assert.equal(typeof endpoint.secretFile, 'string', `${title}: signed`);
    }
  });

  it('the deploy endpoints take pushes and moves of v* tags, with the Authorization header from the environment', () => {
    const deploy = endpoints.filter((e) => e.endpoint.name === 'deploy');
    assert.equal(deploy.length, 2);
    for (const { endpoint } of deploy) {
      assert.deepEqual(endpoint.actions, ['manifest.pushed', 'tag.moved']);
      assert.deepEqual(endpoint.tags, ['v*']);
    }
    assert.deepEqual(deploy[0]!.endpoint.headers, { Authorization: { valueEnv: 'DEPLOY_HOOK_AUTH' } });
    // What the tags filter means for a push of v1.2.3 and latest together: the release tag, not latest.
    const push = parseCloudEvent(
      Buffer.from(JSON.stringify(berthEvent('manifest.pushed', 'team/app', { digest: blob('m').digest, tags: ['v1.2.3', 'latest'] }))),
    );
    assert.notEqual(typeof push, 'string');
    assert.deepEqual(tagsToForward(push as BerthCloudEvent, deploy[0]!.endpoint.tags ?? []), ['v1.2.3']);
  });

  it('the documented event is a CloudEvent the recipes read, and the templates are valid', () => {
    const json = blocks.filter((b) => b.lang === 'json');
    const event = parseCloudEvent(Buffer.from(json[0]!.text));
    assert.notEqual(typeof event, 'string', String(event));
    const templates = json.filter((b) => b.text.includes('{{'));
    assert.equal(templates.length, 2, 'the GitHub and GitLab templates');
    for (const t of templates) checkTemplate(parseTemplate(t.text), { GITLAB_TRIGGER_TOKEN: 'x' }, REGISTRY_HOST);
  });
});

interface CiRequest {
  url: string;
  headers: IncomingHttpHeaders;
  body: { event_type: string; client_payload: Record<string, string> };
}

describe('deploy recipe: the hook forwarding to a CI endpoint', () => {
  let scratch: ScratchDir;
  let ci: Server;
  let hook: RecipeProcess;
  let received: CiRequest[];
  /** The CI's status for a request, by its body. */
  let respond: (body: CiRequest['body']) => number;

  const digest = blob('image').digest;
  const push = (tags: string[], id?: string) =>
    berthEvent('manifest.pushed', 'team/app', { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 5, tags }, id);

  before(async () => {
    scratch = await makeScratchDir('deploy-hook');
    ci = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as CiRequest['body'];
        received.push({ url: req.url ?? '', headers: req.headers, body });
        const status = respond(body);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(status === 204 ? undefined : JSON.stringify({ message: `status ${status}` }));
      });
    });
    ci.listen(0, '127.0.0.1');
    await once(ci, 'listening');
    const ciUrl = `http://127.0.0.1:${(ci.address() as { port: number }).port}/repos/acme/deploy/dispatches`;
    // The GitHub template exactly as documented.
    const template = codeBlocks(await readFile(DOC, 'utf8')).find((b) => b.lang === 'json' && b.text.includes('"event_type"'));
    assert.ok(template);
    await writeFile(join(scratch.path, 'github-dispatch.json'), template.text);
    await writeFile(join(scratch.path, 'secret'), `${SECRET}\n`);
    hook = await startRecipe(
      'deploy-hook',
      [
        '--secret-file',
        join(scratch.path, 'secret'),
        '--url',
        ciUrl,
        '--template',
        join(scratch.path, 'github-dispatch.json'),
        '--tags',
        'v*',
        '--registry-host',
        REGISTRY_HOST,
        '--header',
        'Accept: application/vnd.github+json',
        '--header-env',
        'Authorization=GITHUB_DISPATCH_AUTH',
      ],
      { GITHUB_DISPATCH_AUTH: 'Bearer gh-test-token' },
    );
  });
  beforeEach(() => {
    received = [];
    respond = () => 204;
  });
  after(async () => {
    await hook?.stop();
    ci?.close();
    await scratch?.remove();
  });

  it('POSTs the rendered template for the matching tag, with the configured headers', async () => {
    const event = push(['v1.2.3', 'latest']);
    const answer = await postEvent(hook.url, event, { secrets: [SECRET] });
    assert.deepEqual(answer.body, { status: 'forwarded', tags: ['v1.2.3'] });
    assert.equal(answer.status, 200);
    assert.equal(received.length, 1);
    const request = received[0]!;
    assert.equal(request.url, '/repos/acme/deploy/dispatches');
    assert.equal(request.headers.authorization, 'Bearer gh-test-token');
    assert.equal(request.headers.accept, 'application/vnd.github+json');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.deepEqual(request.body, {
      event_type: 'berth-release',
      client_payload: {
        repository: 'team/app',
        tag: 'v1.2.3',
        digest,
        reference: `${REGISTRY_HOST}/team/app@${digest}`,
        event_id: event.id,
        pushed_by: 'ci-bot',
      },
    });
    assert.equal(hook.output().includes('gh-test-token'), false, 'the token is never logged');
  });

  it('forwards a change once: not again on redelivery, nor for the tag.moved of the same push', async () => {
    const pushed = push(['v2.0.0'], 'change-1.0');
    const moved = berthEvent('tag.moved', 'team/app', { tag: 'v2.0.0', digest, previousDigest: blob('old').digest }, 'change-1.1');
    assert.equal((await postEvent(hook.url, pushed, { secrets: [SECRET] })).body.status, 'forwarded');
    assert.equal((await postEvent(hook.url, moved, { secrets: [SECRET] })).body.status, 'duplicate');
    assert.equal((await postEvent(hook.url, pushed, { secrets: [SECRET], attempt: 2 })).body.status, 'duplicate');
    assert.equal(received.length, 1);
    // A later move of the tag (say a rollback) is a new change.
    const rollback = berthEvent('tag.moved', 'team/app', { tag: 'v2.0.0', digest: blob('old').digest, previousDigest: digest }, 'change-2.1');
    assert.deepEqual((await postEvent(hook.url, rollback, { secrets: [SECRET] })).body, { status: 'forwarded', tags: ['v2.0.0'] });
    assert.equal(received.length, 2);
    assert.equal(received[1]!.body.client_payload.digest, blob('old').digest);
  });

  it('calls nothing for other tags, other events, or a bad signature', async () => {
    assert.equal((await postEvent(hook.url, push(['latest', 'main-3f2a']), { secrets: [SECRET] })).body.status, 'ignored');
    const deleted = berthEvent('tag.deleted', 'team/app', { tag: 'v1.0.0', digest });
    assert.equal((await postEvent(hook.url, deleted, { secrets: [SECRET] })).body.status, 'ignored');
    assert.equal((await postEvent(hook.url, push(['v9.9.9']), { secrets: ['wrong'] })).status, 401);
    assert.deepEqual(received, []);
  });

  it('a CI outage is a 503 (Berth retries) and a CI refusal a 422 (dead-lettered)', async () => {
    respond = () => 503;
    const event = push(['v3.0.0']);
    const down = await postEvent(hook.url, event, { secrets: [SECRET] });
    assert.equal(down.status, 503);
    respond = () => 204;
    assert.deepEqual((await postEvent(hook.url, event, { secrets: [SECRET], attempt: 2 })).body, { status: 'forwarded', tags: ['v3.0.0'] });

    respond = () => 401;
    const refused = await postEvent(hook.url, push(['v3.0.1']), { secrets: [SECRET] });
    assert.equal(refused.status, 422);
    assert.match(JSON.stringify(refused.body.failures), /answered 401/);
    assert.equal(received.length, 3);
  });

  it('after a partial failure, a redelivery forwards only the tags that failed', async () => {
    respond = (body) => (body.client_payload.tag === 'v4.1' ? 500 : 204);
    const event = push(['v4.0', 'v4.1']);
    const partial = await postEvent(hook.url, event, { secrets: [SECRET] });
    assert.equal(partial.status, 503);
    assert.deepEqual(partial.body.forwarded, ['v4.0']);
    respond = () => 204;
    assert.deepEqual((await postEvent(hook.url, event, { secrets: [SECRET], attempt: 2 })).body, { status: 'forwarded', tags: ['v4.1'] });
    assert.deepEqual(
      received.map((r) => r.body.client_payload.tag),
      ['v4.0', 'v4.1', 'v4.1'],
    );
  });

  it('refuses to start on a template placeholder it does not know, or a header variable that is not set', async () => {
    const bad = join(scratch.path, 'bad.json');
    await writeFile(bad, '{"ref": "{{branch}}"}');
    const common = ['--secret-file', join(scratch.path, 'secret'), '--url', 'http://127.0.0.1:9/'];
    await assert.rejects(startRecipe('deploy-hook', [...common, '--template', bad]), /\{\{branch\}\}, which is not one of/);
    const good = join(scratch.path, 'github-dispatch.json');
    await assert.rejects(startRecipe('deploy-hook', [...common, '--template', good]), /--registry-host/);
    await assert.rejects(
      startRecipe('deploy-hook', [...common, '--template', good, '--registry-host', REGISTRY_HOST, '--header-env', 'Authorization=UNSET_VAR']),
      /UNSET_VAR is not set/,
    );
  });
});
