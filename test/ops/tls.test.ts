import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { makeSelfSignedCert } from '../helpers/tls-cert.js';
import { asTlsServer, httpsOptions, readTlsMaterial, reloadOnSighup, reloadTls, type TlsFiles } from '../../server/operations/tls.js';

const scratch = mkdtempSync(join(tmpdir(), 'berth-tls-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function makeCert(name: string, commonName: string): TlsFiles {
  return makeSelfSignedCert(scratch, name, commonName);
}

function fingerprint(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}

/** The certificate the server presents to a new connection, and the protocol agreed. */
function handshake(port: number, options: { minVersion?: 'TLSv1' | 'TLSv1.2'; maxVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' } = {}) {
  return new Promise<{ fingerprint: string; protocol: string | null }>((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      rejectUnauthorized: false,
      // Lets this client offer TLS 1.0/1.1 at all (OpenSSL 3 refuses them by default), so a refusal
      // can only come from the server.
      ciphers: 'DEFAULT@SECLEVEL=0',
      ...options,
    });
    socket.once('secureConnect', () => {
      const result = { fingerprint: socket.getPeerX509Certificate()?.fingerprint256 ?? '', protocol: socket.getProtocol() };
      socket.end();
      resolve(result);
    });
    socket.once('error', reject);
  });
}

describe('HTTPS', () => {
  let first: TlsFiles;
  let second: TlsFiles;
  let live: TlsFiles;
  let app: FastifyInstance;
  let port: number;

  before(async () => {
    first = makeCert('first', 'berth-first');
    second = makeCert('second', 'berth-second');
    live = { certFile: join(scratch, 'live.crt'), keyFile: join(scratch, 'live.key') };
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);
    app = Fastify({ logger: false, https: httpsOptions(live) });
    app.get('/v2/', async () => ({}));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    assert.ok(address && typeof address === 'object');
    port = address.port;
  });
  after(() => app.close());

  it('serves HTTPS that a client trusting the certificate accepts', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/v2/', servername: 'localhost', ca: readFileSync(first.certFile) }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    assert.equal(body, '{}');
  });

  it('refuses TLS 1.1 and accepts TLS 1.2', async () => {
    await assert.rejects(handshake(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }), (err: NodeJS.ErrnoException) => {
      // The server's protocol_version alert, not a client-side "no protocols available".
      assert.match(String(err.code), /^ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION$/, `${err.code}: ${err.message}`);
      return true;
    });
    assert.equal((await handshake(port, { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
    assert.equal((await handshake(port)).protocol, 'TLSv1.3');
  });

  it('reloads the certificate for new connections, and keeps the old one when the new pair is broken', async () => {
    assert.equal((await handshake(port)).fingerprint, fingerprint(first.certFile));
    copyFileSync(second.certFile, live.certFile);
    copyFileSync(second.keyFile, live.keyFile);
    assert.equal(reloadTls(asTlsServer(app.server), live), true);
    assert.equal((await handshake(port)).fingerprint, fingerprint(second.certFile));

    // A renewal caught half-way: the new certificate with the old key.
    copyFileSync(first.certFile, live.certFile);
    const errors: string[] = [];
    const log = { info: () => undefined, error: (obj: object) => void errors.push(String((obj as { err: Error }).err.message)) };
    assert.equal(reloadTls(asTlsServer(app.server), live, log), false);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /not usable together/);
    assert.equal((await handshake(port)).fingerprint, fingerprint(second.certFile));
  });

  it('reloads on SIGHUP until stopped', async () => {
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);
    const stop = reloadOnSighup(asTlsServer(app.server), live);
    try {
      // Delivered to the listeners as a real SIGHUP would be, without signalling the test runner.
      process.emit('SIGHUP', 'SIGHUP');
      assert.equal((await handshake(port)).fingerprint, fingerprint(first.certFile));
    } finally {
      stop();
    }
    copyFileSync(second.certFile, live.certFile);
    copyFileSync(second.keyFile, live.keyFile);
    assert.equal(process.listenerCount('SIGHUP'), 0);
    assert.equal((await handshake(port)).fingerprint, fingerprint(first.certFile));
  });
});

describe('TLS material errors', () => {
  it('asTlsServer refuses a plain HTTP server', async () => {
    const plain = Fastify({ logger: false });
    assert.throws(() => asTlsServer(plain.server), /not started with TLS/);
    await plain.close();
  });

  it('names the missing file', () => {
    assert.throws(
      () => readTlsMaterial({ certFile: join(scratch, 'absent.crt'), keyFile: join(scratch, 'absent.key') }),
      /cannot read TLS certificate .*absent\.crt/,
    );
  });

  it('names a file that is not PEM', () => {
    const pair = makeCert('garbled', 'x');
    writeFileSync(pair.certFile, 'not a certificate');
    assert.throws(() => readTlsMaterial(pair), /are not usable together/);
  });
});
