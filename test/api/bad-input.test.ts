// Errors raised before any route runs do not depend on storage, so these run on the default pair only;
// the malformed requests that reach a route run on every pair (bad-input-suite.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { clientErrorHandler, frameworkErrorHandler } from '../../server/errors.js';
import { payload, type Case } from './bad-input-suite.js';

/** Errors raised before any route runs; server/app.ts should pass these two handlers to Fastify. */
describe('router and HTTP parser errors (frameworkErrors + clientErrorHandler from server/errors.ts)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ deps: { server: { frameworkErrors: frameworkErrorHandler, clientErrorHandler } } });
  });
  after(async () => reg?.close());

  const cases: Case[] = [
    { name: 'broken percent-encoding in a manifest reference', method: 'GET', path: '/v2/a/manifests/%', status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'broken percent-encoding in a manifest reference (PUT)', method: 'PUT', path: '/v2/a/manifests/%', body: '{}', status: 400, code: 'TAG_INVALID' },
    { name: 'broken percent-encoding in a blob digest', method: 'GET', path: '/v2/a/blobs/%zz', status: 400, code: 'DIGEST_INVALID' },
    { name: 'broken percent-encoding in a referrers digest', method: 'GET', path: '/v2/a/referrers/%', status: 400, code: 'DIGEST_INVALID' },
    { name: 'broken percent-encoding in an upload id', method: 'PATCH', path: '/v2/a/blobs/uploads/%', status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
    { name: 'a name of 1,100 characters', method: 'GET', path: `/v2/${'a'.repeat(1100)}/tags/list`, status: 400, code: 'NAME_INVALID' },
    { name: 'a reference of 1,100 characters', method: 'GET', path: `/v2/a/manifests/${'t'.repeat(1100)}`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'a reference of 1,100 characters (DELETE)', method: 'DELETE', path: `/v2/a/manifests/${'t'.repeat(1100)}`, status: 400, code: 'TAG_INVALID' },
    {
      name: 'raw UTF-8 bytes in the request line',
      method: 'GET',
      path: `/v2/${Buffer.from('café', 'utf8').toString('latin1')}/tags/list`,
      status: 400,
      code: 'REQUEST_INVALID',
    },
    { name: 'an unknown HTTP method', method: 'FOO', path: '/v2/', status: 400, code: 'REQUEST_INVALID' },
    {
      name: 'a Content-Length past 2^64',
      method: 'POST',
      path: `/v2/a/blobs/uploads/?digest=${payload.digest}`,
      headers: { 'Content-Length': '99999999999999999999' },
      body: 'x',
      status: 400,
      code: 'REQUEST_INVALID',
    },
  ];
  for (const c of cases) {
    it(`${c.status} ${c.code}: ${c.name}`, async () => {
      const res = await rawRequest(reg.url, { method: c.method, path: c.path, headers: c.headers, body: c.body });
      assert.ok(res, 'no answer');
      const text = res.body.toString('utf8');
      assert.equal(res.status, c.status, text.slice(0, 300));
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
      const body = JSON.parse(text) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0]?.code, c.code, body.errors[0]?.message);
      assert.ok((body.errors[0]?.message.length ?? 0) >= 10);
    });
  }
});
