// The OpenAPI document describes every /api/v1 route the app registers (collected with an onRoute
// hook), and is an OpenAPI 3.1 document served as JSON.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { API_REPO_PREFIX } from '../../server/routes/url-rewrite.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

describe('GET /api/v1/openapi.json', () => {
  let reg: TestRegistry;
  const routes: string[] = [];

  before(async () => {
    reg = await startTestRegistry({
      config: { gc: { enabled: false } },
      deps: {
        plugins: async (app) => {
          app.addHook('onRoute', (route) => {
            if (!route.url.startsWith('/api/v1/')) return;
            // The document names the URL clients send, before the rewrite of repository names.
            const url = route.url.replace(API_REPO_PREFIX, '/api/v1/repositories/').replace(/:(\w+)/g, '{$1}');
            for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push(`${method.toLowerCase()} ${url}`);
          });
        },
      },
    });
  });
  after(async () => reg?.close());

  it('is an OpenAPI 3.1 document describing every registered /api/v1 route', async () => {
    const res = await fetch(`${reg.url}/api/v1/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const doc = JSON.parse(await res.text()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    assert.ok(routes.length > 20, `routes seen: ${routes.length}`);
    const missing = routes.filter((r) => {
      const [method, url] = r.split(' ') as [string, string];
      return doc.paths[url]?.[method] === undefined;
    });
    assert.deepEqual(missing, []);
  });
});
