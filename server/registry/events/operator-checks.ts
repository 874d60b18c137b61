// What `berth events` and /api/v1/events check before an operator's request reaches operator.ts.
import type { BerthConfig } from '../../config.js';
import type { EventMetadata } from '../../../storage-drivers/metadata/event-types.js';
import { UnknownEndpointError } from './operator.js';

export const EVENTS_DISABLED =
  'events are off on this registry (events.enabled: false): no change is recorded or delivered; set events.enabled: true to use the event log';

export function configuredEndpoints(config: Pick<BerthConfig, 'events'>): string[] {
  return config.events.endpoints.map((e) => e.name);
}

/**
 * For reading and discarding dead letters: a configured endpoint, or one removed from the
 * configuration that still has state (its dead letters stay until discarded).
 */
export async function assertKnownEndpoint(events: EventMetadata, name: string, configured: readonly string[]): Promise<void> {
  if (configured.includes(name) || (await events.listEndpoints()).includes(name)) return;
  throw new UnknownEndpointError(name, configured);
}
