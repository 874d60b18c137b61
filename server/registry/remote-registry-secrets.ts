import { fileProblem, readCaFile } from '../config-sources.js';

/*
 * What a proxy upstream and a replication registry read at start-up: the password (from its file or
 * environment variable) and the CA file. Both are kept off the resolved object's enumerable
 * properties, so logging, JSON.stringify or util.inspect of it never shows them.
 */

export interface SecretSources {
  env: NodeJS.ProcessEnv;
  readFile(path: string): string;
}

export interface SecretKeys {
  passwordFile?: string | undefined;
  passwordEnv?: string | undefined;
  caFile?: string | undefined;
}

/** The password and CA text, or undefined with the problems pushed (each names `where(field)`, never a password). */
export function readSecrets(
  keys: SecretKeys,
  where: (field: string) => string,
  sources: SecretSources,
  problems: string[],
): { password: string | undefined; ca: string | undefined } | undefined {
  const before = problems.length;
  let password: string | undefined;
  if (keys.passwordFile !== undefined) {
    try {
      // A file written by `echo` ends in a line break that is not part of the password.
      password = sources.readFile(keys.passwordFile).replace(/\r?\n$/, '');
      if (password === '') problems.push(`${where('passwordFile')}: ${keys.passwordFile} is empty`);
    } catch (err) {
      problems.push(`${where('passwordFile')}: cannot read ${keys.passwordFile}: ${fileProblem(err)}`);
    }
  } else if (keys.passwordEnv !== undefined) {
    password = sources.env[keys.passwordEnv];
    if (password === undefined || password === '') problems.push(`${where('passwordEnv')}: environment variable ${keys.passwordEnv} is not set`);
  }
  const ca = keys.caFile === undefined ? undefined : readCaFile(keys.caFile, where('caFile'), sources.readFile, problems);
  return problems.length > before ? undefined : { password, ca };
}

/** `resolved` frozen with `password` and `ca` attached as non-enumerable properties. */
export function withSecrets<T extends object, R>(resolved: T, secrets: { password: string | undefined; ca: string | undefined }): R {
  Object.defineProperties(resolved, {
    password: { value: secrets.password, enumerable: false },
    ca: { value: secrets.ca, enumerable: false },
  });
  return Object.freeze(resolved) as unknown as R;
}
