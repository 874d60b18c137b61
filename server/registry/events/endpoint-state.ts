// The one way an endpoint's shared state changes, for the delivering lane and for operators alike:
// read, change, compare-and-set, again on a conflict.
import type { EndpointState, EventMetadata } from '../../../storage-drivers/metadata/event-types.js';

/** A state being changed: undefined clears a field (dropped before it is stored). */
export type StateDraft = { [K in keyof EndpointState]?: EndpointState[K] | undefined };

const ATTEMPTS = 20;

/** `mutate` returning undefined changes nothing (and the current state is returned). */
export async function changeEndpointState(
  events: EventMetadata,
  endpoint: string,
  mutate: (current: EndpointState | undefined) => StateDraft | undefined,
): Promise<EndpointState | undefined> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const current = await events.getEndpoint(endpoint);
    const changed = mutate(current);
    if (changed === undefined) return current;
    const revision = current?.revision ?? 0;
    // JSON leaves undefined fields out anyway; dropping them here keeps the stored state and this one alike.
    const next = Object.fromEntries(Object.entries({ ...changed, revision: revision + 1 }).filter(([, v]) => v !== undefined)) as unknown as EndpointState;
    if (await events.updateEndpoint(endpoint, revision, next)) return next;
  }
  throw new Error(`the state of endpoint ${endpoint} kept changing; try again`);
}
