// A throwaway self-signed certificate for 127.0.0.1 and localhost, made with openssl for TLS tests.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface CertFiles {
  certFile: string;
  keyFile: string;
}

/** Writes `<name>.crt` and `<name>.key` into `dir`: an EC P-256 certificate for `commonName`, valid two days. */
export function makeSelfSignedCert(dir: string, name: string, commonName = 'localhost'): CertFiles {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const subject = ['-subj', `/CN=${commonName}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'];
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile];
  execFileSync('openssl', ['req', '-x509', ...key, '-out', certFile, '-days', '2', ...subject], { stdio: 'ignore' });
  return { certFile, keyFile };
}
