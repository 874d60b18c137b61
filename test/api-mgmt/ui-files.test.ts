// The web UI's files as Berth serves them: / sends browsers to /ui/, the page and its scripts come
// with a strict Content-Security-Policy, an ETag answers 304, nothing outside the UI's own files can
// be named, and ui.enabled false turns it all off.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

describe('web UI files', () => {
  let reg: TestRegistry;
  let off: TestRegistry;

  before(async () => {
    reg = await startTestRegistry();
    off = await startTestRegistry({ config: { ui: { enabled: false } } });
  });
  after(async () => {
    await reg?.close();
    await off?.close();
  });

  it('redirects / to /ui/ and serves the page with its policy headers', async () => {
    const root = await fetch(`${reg.url}/`, { redirect: 'manual' });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/ui/');
    const page = await fetch(`${reg.url}/ui/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(await page.text(), /<script type="module" src="main.js"><\/script>/);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  });

  it('serves the compiled scripts, revalidated by ETag', async () => {
    const script = await fetch(`${reg.url}/ui/pages/repository.js`);
    assert.equal(script.status, 200);
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
    const etag = script.headers.get('etag');
    assert.ok(etag);
    const again = await fetch(`${reg.url}/ui/pages/repository.js`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
  });

  it('names no file outside the UI: traversal and unknown names are 404 with a hint', async () => {
    for (const path of ['/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/..%2fpackage.json', '/ui/pages/../../server/app.js', '/ui/nope.js']) {
      const res = await rawRequest(reg.url, { method: 'GET', path });
      assert.equal(res?.status, 404, path);
      assert.doesNotMatch(res?.body.toString('utf8') ?? '', /"name": "berth"|import /, path);
    }
    const res = await fetch(`${reg.url}/ui/nope.js`);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]?.code, 'NOT_FOUND');
    assert.match(body.errors[0]?.message ?? '', /open \/ui\//);
  });

  it('ui.enabled false: no page and no redirect', async () => {
    assert.equal((await fetch(`${off.url}/ui/`)).status, 404);
    assert.equal((await fetch(`${off.url}/`, { redirect: 'manual' })).status, 404);
  });
});
