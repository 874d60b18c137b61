import { readFileSync } from 'node:fs';
import type { SecureContextOptions, Server as TlsServer } from 'node:tls';
import { createSecureContext } from 'node:tls';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** Minimal logger shape so this works with Fastify's logger or a test spy. */
export interface TlsLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const MIN_VERSION = 'TLSv1.2';

/** Reads and checks the pair; the message names the file at fault, for a clear start-up failure. */
export function readTlsMaterial(files: TlsFiles): SecureContextOptions & { minVersion: typeof MIN_VERSION } {
  const read = (label: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read TLS ${label} ${path}: ${(err as Error).message}`);
    }
  };
  const options = { cert: read('certificate', files.certFile), key: read('key', files.keyFile), minVersion: MIN_VERSION } as const;
  try {
    // Parses both and checks that the key matches the certificate.
    createSecureContext(options);
  } catch (err) {
    throw new Error(`TLS certificate ${files.certFile} and key ${files.keyFile} are not usable together: ${(err as Error).message}`);
  }
  return options;
}

export type SecureContextHolder = Pick<TlsServer, 'setSecureContext'>;

/** Fastify types `app.server` as http.Server unless built with https; this checks and narrows at run time. */
export function asTlsServer(server: object): SecureContextHolder {
  const candidate = server as Partial<SecureContextHolder>;
  if (typeof candidate.setSecureContext !== 'function') throw new Error('the server was not started with TLS');
  return candidate as SecureContextHolder;
}

/** For `Fastify({ https: httpsOptions(config.http.tls) })`: TLS 1.2 and later only. */
export function httpsOptions(files: TlsFiles): SecureContextOptions & { minVersion: typeof MIN_VERSION } {
  return readTlsMaterial(files);
}

/**
 * Re-reads the pair and swaps it in for new connections; open connections keep their session.
 * A broken pair (half-written renewal, wrong key) is refused and the current one stays in service.
 */
export function reloadTls(server: SecureContextHolder, files: TlsFiles, log?: TlsLogger): boolean {
  let options: SecureContextOptions;
  try {
    options = readTlsMaterial(files);
  } catch (err) {
    log?.error({ err }, 'TLS reload failed; keeping the current certificate');
    return false;
  }
  server.setSecureContext(options);
  log?.info({ certFile: files.certFile }, 'TLS certificate reloaded');
  return true;
}

/** Reloads on every SIGHUP (as certbot and cert-manager hooks expect). Returns a function that stops it. */
export function reloadOnSighup(server: SecureContextHolder, files: TlsFiles, log?: TlsLogger): () => void {
  const onHup = () => {
    reloadTls(server, files, log);
  };
  process.on('SIGHUP', onHup);
  return () => {
    process.off('SIGHUP', onHup);
  };
}
