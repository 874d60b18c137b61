import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { importPKCS8, type CryptoKey } from 'jose';
import type { AuthConfigInput } from '../../auth/config.js';
import { setUserPassword } from '../../auth/users.js';

export const PASSWORDS = { alice: 'alice-secret-pw', bob: 'bob-secret-pw', carol: 'carol-secret-pw' } as const;

/** Rules used by most auth tests. */
export const baseConfig: AuthConfigInput = {
  tokenTtlSeconds: 120,
  refreshTokenTtlSeconds: 3600,
  clockToleranceSeconds: 5,
  userNamespaces: true,
  groups: { devs: ['alice', 'bob'] },
  rules: [
    { repository: 'public/**', everyone: true, allow: ['pull'] },
    { repository: 'team/**', groups: ['devs'], allow: ['pull', 'push'] },
    { repository: 'team/locked', groups: ['devs'], deny: ['push'] },
    { repository: 'secret/**', users: ['bob'], allow: ['*'] },
    { registry: 'catalog', users: ['alice'], allow: ['*'] },
  ],
};

export async function addUsers(dir: string): Promise<void> {
  const file = join(dir, 'auth', 'htpasswd');
  for (const [name, pw] of Object.entries(PASSWORDS)) await setUserPassword(file, name, pw, 4);
}

/** The active generated private key, read from disk the way an attacker who stole it would. */
export async function stealSigningKey(dir: string): Promise<{ kid: string; key: CryptoKey }> {
  const keyDir = join(dir, 'auth', 'keys');
  const pem = (await readdir(keyDir)).find((f) => f.endsWith('.pem'));
  if (!pem) throw new Error('no key file');
  return { kid: pem.slice(0, -4), key: await importPKCS8(await readFile(join(keyDir, pem), 'utf8'), 'ES256') };
}

export function decodePart(token: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
}
