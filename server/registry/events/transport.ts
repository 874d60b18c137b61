// One configured endpoint as the delivery lane sees it: the filter, the body in the endpoint's format,
// the signature and static headers, one HTTP attempt.
import { backoffDelayMs } from './backoff.js';
import type { EventEndpoint } from './endpoints.js';
import type { RegistryEvent } from './event.js';
import { formatEvent, type FormatOptions, type FormattedBody } from './formats.js';
import type { EndpointTransport, LanePolicy } from './lane.js';
import { deliveryHeaders, postEvent } from './sender.js';

export function endpointTransport(endpoint: EventEndpoint, format: FormatOptions, now: () => number): EndpointTransport<RegistryEvent> {
  // Formatted once per event: accepts asks, and every attempt sends the same body.
  const bodies = new WeakMap<RegistryEvent, FormattedBody | null>();
  const bodyOf = (event: RegistryEvent) => {
    if (!bodies.has(event)) bodies.set(event, formatEvent(endpoint.format, event, format));
    return bodies.get(event) ?? null;
  };
  return {
    // An event the endpoint's format cannot say (distribution has no tag.moved) is not for it either.
    accepts: (event) => endpoint.filter(event) && bodyOf(event) !== null,
    deliver: async (event, attempt, signal) => {
      const formatted = bodyOf(event);
      if (formatted === null) return { ok: true, retryable: false };
      const headers = deliveryHeaders({
        eventId: event.id,
        attempt,
        body: formatted.body,
        secrets: endpoint.secrets,
        staticHeaders: endpoint.headers,
        nowSeconds: Math.floor(now() / 1000),
      });
      return postEvent({
        url: endpoint.url,
        body: formatted.body,
        contentType: formatted.contentType,
        headers,
        timeoutMs: endpoint.timeoutMs,
        signal,
        agent: endpoint.agent,
        now,
      });
    },
  };
}

export function endpointPolicy(endpoint: EventEndpoint, options: { batchSize: number; leaseMs: number }): LanePolicy {
  return {
    maxAttempts: endpoint.maxAttempts,
    concurrency: endpoint.concurrency,
    maxDeadLetters: endpoint.maxDeadLetters,
    backoffMs: (attempt, retryAfterMs) => backoffDelayMs(attempt, endpoint.backoff, { retryAfterMs }),
    batchSize: options.batchSize,
    leaseMs: options.leaseMs,
  };
}
