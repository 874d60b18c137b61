import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { UpstreamInvalidError } from '../../server/registry/proxy/errors.js';
import { OCI_MANIFEST } from '../helpers/oci.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { makeSelfSignedCert } from '../helpers/tls-cert.js';
import { json, makeUpstream, startFakeServer, type FakeServer } from './helpers.js';

/** An https upstream whose token service is plain http: the credentials must not be sent there. */
describe('proxy upstream over https', () => {
  let scratch: ScratchDir;
  let tokens: FakeServer;
  let registry: https.Server;
  let registryUrl: string;
  let caFile: string;

  before(async () => {
    scratch = await makeScratchDir('proxy-tls');
    const cert = makeSelfSignedCert(scratch.path, 'upstream');
    caFile = cert.certFile;
    tokens = await startFakeServer((_req, res) => json(res, 200, { token: 'leaked', expires_in: 60 }));
    registry = https.createServer({ cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) }, (req, res) => {
      if (req.headers.authorization === 'Bearer leaked') {
        res.writeHead(200, { 'Content-Type': OCI_MANIFEST, 'Content-Length': 2 });
        res.end('{}');
        return;
      }
      json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'WWW-Authenticate': `Bearer realm="${tokens.url}/token",service="fake"` });
    });
    await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
    registryUrl = `https://127.0.0.1:${(registry.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => registry?.close(() => resolve()));
    registry?.closeAllConnections();
    await tokens?.close();
    await scratch?.remove();
  });

  it('refuses a plain-http token realm when it holds credentials, and never contacts it', async () => {
    const { upstream } = makeUpstream({ urls: [registryUrl], caFile, username: 'robot', passwordEnv: 'PW' }, { env: { PW: 'hunter2' } });
    try {
      await assert.rejects(upstream.headManifest('team/a', 'v1', [OCI_MANIFEST]), (err: unknown) => {
        assert.ok(err instanceof UpstreamInvalidError);
        assert.match(err.message, /plain-http token realm .*credentials are not sent in the clear/);
        assert.doesNotMatch(err.message, /hunter2/);
        return true;
      });
      assert.equal(tokens.requests.length, 0);
    } finally {
      upstream.close();
    }
  });

  it('an anonymous pull may still use a plain-http token realm', async () => {
    const { upstream } = makeUpstream({ urls: [registryUrl], caFile });
    const before = tokens.requests.length;
    try {
      await upstream.getManifest('team/a', 'v1', [OCI_MANIFEST]);
      assert.equal(tokens.requests.length, before + 1);
      assert.equal(tokens.requests[before]?.headers.authorization, undefined);
    } finally {
      upstream.close();
    }
  });
});
