// What runs in a server process for events: the relay (Redis moves repositories' outboxes into the
// log; any number of processes may run it at once) and one delivery loop per configured endpoint.
// Nothing here is on a request's path: a push only writes its outbox record.
import type { FastifyBaseLogger } from 'fastify';
import type { ChangeRecord, EventMetadata } from '../../../storage-drivers/metadata/event-types.js';
import { EndpointLane, type EndpointTransport, type LaneEvent, type LaneObservation, type LanePolicy } from './lane.js';

export interface LaneSpec<E extends LaneEvent> {
  name: string;
  transport: EndpointTransport<E>;
  policy: LanePolicy;
}

export interface EventServiceOptions<E extends LaneEvent> {
  events: EventMetadata;
  lanes: LaneSpec<E>[];
  expand(record: ChangeRecord): E[];
  holder: string;
  /** How long an idle loop waits before looking at the log again. */
  pollMs: number;
  /** Records the relay moves per call. */
  relayBatch: number;
  /** Whether this service runs the relay (default true); replication's lanes leave it to the events service. */
  relay?: boolean;
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  log: FastifyBaseLogger;
  observe?(observation: LaneObservation<E>): void;
}

export class EventService<E extends LaneEvent> {
  private readonly stop = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly lanes: { name: string; lane: EndpointLane<E> }[];

  constructor(private readonly options: EventServiceOptions<E>) {
    this.lanes = options.lanes.map((spec) => ({
      name: spec.name,
      lane: new EndpointLane<E>({
        events: options.events,
        endpoint: spec.name,
        transport: spec.transport,
        policy: spec.policy,
        holder: options.holder,
        expand: options.expand,
        now: options.now,
        sleep: options.sleep,
        ...(options.observe ? { observe: options.observe } : {}),
      }),
    }));
  }

  start(): void {
    if (this.options.relay !== false) this.loops.push(this.loop('relay', () => this.relayOnce()));
    for (const { name, lane } of this.lanes) this.loops.push(this.loop(`endpoint ${name}`, async () => (await lane.runOnce(this.stop.signal)) === 'worked'));
  }

  /** Stops the loops, waits for them, and gives the endpoints' claims up for the other processes. */
  async close(): Promise<void> {
    this.stop.abort();
    await Promise.all(this.loops);
    await Promise.all(this.lanes.map(({ lane }) => lane.release().catch(() => undefined)));
  }

  private async relayOnce(): Promise<boolean> {
    return (await this.options.events.relay(this.options.relayBatch)) >= this.options.relayBatch;
  }

  /** Runs `step` until stopped: again at once while it had work, after pollMs when it had none or failed. */
  private async loop(what: string, step: () => Promise<boolean>): Promise<void> {
    const { signal } = this.stop;
    let failing = false;
    while (!signal.aborted) {
      let busy = false;
      try {
        busy = await step();
        if (failing) this.options.log.info(`events: ${what} works again`);
        failing = false;
      } catch (err) {
        if (signal.aborted) break;
        // Logged once per outage, not on every poll.
        if (!failing) this.options.log.warn({ err }, `events: ${what} failed; trying again every ${this.options.pollMs} ms`);
        failing = true;
      }
      if (!busy && !signal.aborted) await this.options.sleep(this.options.pollMs, signal).catch(() => undefined);
    }
  }
}
