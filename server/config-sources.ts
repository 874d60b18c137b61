// What start-up reads beyond the config file (secret and CA files) and the URL checks shared by
// sections that send requests out (event endpoints, proxy upstreams). Problems name the key, never a value.
import { z } from 'zod';

/** Why a file named in the config could not be read, in words. */
export function fileProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return (err as Error).message;
}

/** Reads a PEM CA file named at `key`; undefined, with the problem recorded, when it is unusable. */
export function readCaFile(path: string, key: string, readFile: (path: string) => string, problems: string[]): string | undefined {
  try {
    const ca = readFile(path);
    if (ca.includes('-----BEGIN CERTIFICATE-----')) return ca;
    problems.push(`${key}: ${path} holds no PEM certificate`);
  } catch (err) {
    problems.push(`${key}: cannot read ${path}: ${fileProblem(err)}`);
  }
  return undefined;
}

/**
 * An http(s) URL without credentials (URLs are logged and shown): `credentials` says where they go
 * instead. With `bare`, no query or fragment either.
 */
export function outboundUrl(options: { credentials: string; bare?: string }) {
  return z
    .string()
    .url()
    .superRefine((text, ctx) => {
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        return; // .url() has said so already
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: `must be an http or https URL, not ${url.protocol}` });
      if (url.username || url.password) ctx.addIssue({ code: 'custom', message: `must not carry credentials: ${options.credentials}` });
      if (options.bare !== undefined && (url.search || url.hash))
        ctx.addIssue({ code: 'custom', message: `must not have a query or fragment (${options.bare})` });
    });
}
