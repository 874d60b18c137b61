// Replication in a server process: the registries resolved (passwords and CA files read now, so a
// ConfigError names what is missing), each enabled rule built with its two sides, the reconcile
// schedule, and for push rules the trigger lanes on the event stream. Started when the server is
// ready, stopped when it closes.
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import type { BerthConfig } from '../../config.js';
import type { BlobService } from '../blobs.js';
import { backoffDelayMs } from '../events/backoff.js';
import { expandRecord, type RegistryEvent } from '../events/event.js';
import type { LaneObservation } from '../events/lane.js';
import { EventService } from '../events/service.js';
import type { ManifestService } from '../manifests.js';
import type { UploadService } from '../uploads.js';
import { ReplicationError } from './errors.js';
import { LocalEndpoint } from './local.js';
import type { ReplicationRule } from './rules.js';
import { buildRuleRuntimes } from './runtimes.js';
import { ReplicationService, type ReplicationObservation } from './service.js';
import { ruleTransport, triggerLaneName } from './trigger.js';

/** An event's sync is tried this many times before it is dead-lettered (the next reconcile repairs it anyway). */
const TRIGGER_ATTEMPTS = 6;
const TRIGGER_BACKOFF = { initialMs: 1000, maxMs: 60_000 };
const TRIGGER_DEAD_LETTERS = 1000;

export interface ReplicationRuntime {
  /** This Berth as a rule's source or target; changes are recorded as the rule's (a system actor). */
  localEndpoint(rule: string): LocalEndpoint;
  /** The enabled rules' passes and status; none when no rule is configured. */
  readonly service: ReplicationService;
  /** Every configured rule, enabled or not. */
  readonly rules: readonly ReplicationRule[];
}

export interface ReplicationSetup {
  config: BerthConfig;
  metadata: MetadataStore;
  manifests: ManifestService;
  blobs: BlobService;
  uploads: UploadService;
  /** This process's name in leases (the events holder). */
  holder: string;
  now: () => number;
  observe?: ((observation: ReplicationObservation) => void) | undefined;
}

export function setupReplication(app: FastifyInstance, setup: ReplicationSetup): ReplicationRuntime {
  const { config, metadata, now } = setup;
  const section = config.replication;
  const localEndpoint = (rule: string) =>
    new LocalEndpoint({
      metadata,
      manifests: setup.manifests,
      blobs: setup.blobs,
      uploads: setup.uploads,
      origin: { actor: `replication:${rule}`, actorKind: 'system' },
    });
  const { rules, runtimes, remotes } = buildRuleRuntimes({ config, metadata, localEndpoint, now });
  const observe = (observation: ReplicationObservation) => setup.observe?.(observation);
  const service = new ReplicationService({
    rules: runtimes,
    metadata,
    records: metadata.replication,
    holder: setup.holder,
    leaseMs: section.leaseSeconds * 1000,
    runTimeoutMs: section.runTimeoutSeconds * 1000,
    now,
    log: app.log,
    observe,
  });
  const triggered = runtimes.filter((r) => (r.scope as ReplicationRule).onPush);
  if (triggered.length > 0 && !config.events.enabled) {
    app.log.warn(
      `replication: events are off (events.enabled: false), so ${triggered.map((r) => r.scope.name).join(', ')} react only on their reconcile schedule`,
    );
  }
  const lanes =
    config.events.enabled && triggered.length > 0
      ? new EventService<RegistryEvent>({
          events: metadata.events,
          lanes: triggered.map((rule) => ({
            name: triggerLaneName(rule.scope.name),
            transport: ruleTransport({
              rule: rule.scope,
              sync: rule.sync,
              retryable: (err) => !(err instanceof ReplicationError) || err.retryable,
              each: (result) => observe({ kind: 'tag', rule: rule.scope.name, result, via: 'event' }),
            }),
            policy: {
              maxAttempts: TRIGGER_ATTEMPTS,
              concurrency: rule.concurrency,
              maxDeadLetters: TRIGGER_DEAD_LETTERS,
              backoffMs: (attempt, retryAfterMs) => backoffDelayMs(attempt, TRIGGER_BACKOFF, { retryAfterMs }),
              batchSize: config.events.batchSize,
              leaseMs: section.leaseSeconds * 1000,
            },
          })),
          expand: expandRecord,
          holder: setup.holder,
          pollMs: config.events.pollIntervalMs,
          relayBatch: 1000,
          relay: false,
          now,
          sleep: (ms, signal) => sleep(ms, undefined, { signal }),
          log: app.log,
          observe: (observation: LaneObservation<RegistryEvent>) => {
            if (observation.kind !== 'failed' && observation.kind !== 'dead_lettered') return;
            const rule = observation.endpoint.slice('replication:'.length);
            app.log.warn({ rule, event: observation.event.id, error: observation.error }, `replication: an event's sync failed: ${observation.error}`);
            observe({
              kind: 'failure',
              rule,
              repository: observation.event.repository ?? '',
              tag: observation.event.target.tag ?? observation.event.target.tags?.join(',') ?? '',
              error: observation.error,
              via: 'event',
            });
          },
        })
      : undefined;
  app.addHook('onReady', async () => {
    service.start();
    lanes?.start();
  });
  app.addHook('onClose', async () => {
    await lanes?.close();
    await service.close();
    for (const remote of remotes) remote.close();
  });
  return { localEndpoint, service, rules };
}
