import { formatScope } from './scope.js';
import type { AccessNeed } from './types.js';

function quote(v: string): string {
  return `"${v.replace(/["\\]/g, '\\$&')}"`;
}

/** `WWW-Authenticate: Bearer realm=…,service=…,scope=…[,error=…]` as distribution sends it. */
export function bearerChallenge(realm: string, service: string, needs: AccessNeed[], error?: 'invalid_token' | 'insufficient_scope'): string {
  let header = `Bearer realm=${quote(realm)},service=${quote(service)}`;
  if (needs.length > 0) header += `,scope=${quote(needs.map(formatScope).join(' '))}`;
  if (error) header += `,error=${quote(error)}`;
  return header;
}

/** The error detail distribution puts in its UNAUTHORIZED/DENIED bodies: one entry per action. */
export function accessDetail(needs: AccessNeed[]): Array<{ Type: string; Name: string; Action: string }> {
  return needs.flatMap((n) => n.actions.map((a) => ({ Type: n.type, Name: n.name, Action: a })));
}
