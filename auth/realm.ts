import type { AuthConfig } from './config.js';

/**
 * The challenge realm fixed by configuration: `auth.realm`, or with the built-in token service off an
 * external issuer's realm. Undefined: the realm is `<public URL or request origin><auth.tokenPath>`.
 */
export function configuredRealm(config: Pick<AuthConfig, 'realm' | 'tokenService' | 'externalIssuers'>): string | undefined {
  return config.realm ?? (config.tokenService ? undefined : config.externalIssuers.find((e) => e.realm)?.realm);
}
