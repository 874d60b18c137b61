import { isIP } from 'node:net';

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h.startsWith('::ffff:127.');
}

/**
 * The warning to print (loudly) when Berth would serve without auth where others can reach it;
 * undefined when there is nothing to warn about.
 */
export function openAccessWarning(host: string, authEnabled: boolean): string | undefined {
  if (authEnabled || isLoopbackHost(host)) return undefined;
  return [
    '**********************************************************************',
    `WARNING: auth is OFF and Berth listens on ${host}: anyone who can reach`,
    'this address can push, overwrite and delete images. Turn auth on',
    '(auth.enabled: true) and add a user with `berth user add <name>`.',
    '**********************************************************************',
  ].join('\n');
}
