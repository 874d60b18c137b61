import { OciError } from '../../errors.js';
import { UpstreamDeniedError, UpstreamInvalidError, UpstreamNotFoundError, UpstreamUnavailableError } from './errors.js';
import type { ProxyTarget } from './namespaces.js';

/*
 * What a client hears when the upstream behind a proxy namespace fails it. The upstream's own message
 * goes along (it names the upstream, never a credential) so the client can tell a cache miss on an
 * unreachable upstream from a name the upstream does not have.
 */

/** An upstream failure as the OCI error a client gets; anything else is passed through unchanged. */
export function upstreamFailure(err: unknown, notFound: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN' | 'NAME_UNKNOWN'): unknown {
  if (err instanceof UpstreamNotFoundError) return new OciError(notFound, err.message);
  if (err instanceof UpstreamUnavailableError) {
    const headers: Record<string, string> = err.retryAfter !== undefined ? { 'Retry-After': String(Math.ceil(err.retryAfter)) } : {};
    return new OciError('UNAVAILABLE', `not cached, and ${err.message}`, undefined, headers);
  }
  // Berth's own credentials were refused: the client can do nothing about it, an operator can.
  if (err instanceof UpstreamDeniedError) return new OciError('UNAVAILABLE', `not cached, and ${err.message}; check the upstream's username and password`);
  if (err instanceof UpstreamInvalidError) return new OciError('UNAVAILABLE', `not cached, and ${err.message}`);
  return err;
}

/** The answer to a push, delete, upload or mount into a proxy namespace. */
export function readOnlyRefusal(target: ProxyTarget): OciError {
  return new OciError('DENIED', `${target.upstream.namespace}/ is a pull-through cache of ${target.upstream.url}: push to another namespace`);
}

/** The Warning a cached answer carries when it is served because the upstream could not be asked. */
export function staleWarning(upstream: string, err: UpstreamUnavailableError): string {
  return `110 - "Response is stale: upstream ${upstream} unavailable: ${oneLine(err.message)}"`;
}

/** Header values must not hold line breaks or quotes that would end the warning text. */
function oneLine(text: string): string {
  return text.replace(/[\r\n"]+/g, ' ').slice(0, 300);
}
