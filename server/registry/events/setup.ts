// Events in a server process: the endpoints resolved from the configuration (secrets read, filters
// compiled), the relay and delivery loops started once the server is ready and stopped on close.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { BerthConfig } from '../../config.js';
import type { EventMetadata } from '../../../storage-drivers/metadata/event-types.js';
import { closeEndpoints, resolveEndpoints, type EventEndpoint } from './endpoints.js';
import { expandRecord, type RegistryEvent } from './event.js';
import { formatOptionsFor } from './formats.js';
import type { LaneObservation } from './lane.js';
import { EventService } from './service.js';
import { endpointPolicy, endpointTransport } from './transport.js';

/** Records the relay moves from repositories' outboxes per call. */
const RELAY_BATCH = 1000;

export interface EventsRuntime {
  /** The configured endpoints (secrets non-enumerable). */
  readonly endpoints: readonly EventEndpoint[];
  /** Names this process in endpoint claims: host, pid and a random part. */
  readonly holder: string;
}

export interface EventsSetup {
  config: BerthConfig;
  events: EventMetadata;
  now: () => number;
  observe?: ((observation: LaneObservation<RegistryEvent>) => void) | undefined;
}

/** Starts events in `app` (nothing when events.enabled is false); throws ConfigError for unusable endpoints. */
export function setupEvents(app: FastifyInstance, setup: EventsSetup): EventsRuntime {
  const { config, now } = setup;
  const holder = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  if (!config.events.enabled) return { endpoints: [], holder };
  const endpoints = resolveEndpoints(config.events);
  const format = formatOptionsFor(config, holder);
  const leaseMs = config.events.leaseSeconds * 1000;
  const service = new EventService<RegistryEvent>({
    events: setup.events,
    lanes: config.events.deliver
      ? endpoints.map((endpoint) => ({
          name: endpoint.name,
          transport: endpointTransport(endpoint, format, now),
          policy: endpointPolicy(endpoint, { batchSize: config.events.batchSize, leaseMs }),
        }))
      : [],
    expand: expandRecord,
    holder,
    pollMs: config.events.pollIntervalMs,
    relayBatch: RELAY_BATCH,
    now,
    sleep: (ms, signal) => sleep(ms, undefined, { signal }),
    log: app.log,
    ...(setup.observe ? { observe: setup.observe } : {}),
  });
  app.addHook('onReady', async () => service.start());
  app.addHook('onClose', async () => {
    await service.close();
    closeEndpoints(endpoints);
  });
  return { endpoints, holder };
}
