// Event delivery metrics, labelled by endpoint (the configured ones: a bounded set). Counters count
// this process's work; the backlog gauges are read from the shared state, so every process reports
// the same value and dashboards take the max.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { LaneEvent, LaneObservation } from '../registry/events/lane.js';

export class EventMetrics {
  private readonly delivered: Counter<'endpoint'>;
  private readonly failed: Counter<'endpoint'>;
  private readonly deadLettered: Counter<'endpoint'>;
  private readonly dropped: Counter<'endpoint'>;
  private readonly queued: Gauge<'endpoint'>;
  private readonly lag: Gauge<'endpoint'>;

  constructor(registry: Registry, endpoints: readonly string[]) {
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames: ['endpoint'] as const, registers: [registry] });
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ['endpoint'] as const, aggregator: 'max', registers: [registry] });
    this.delivered = counter('berth_events_delivered_total', 'Events delivered (answered 2xx) by this process, by endpoint.');
    this.failed = counter('berth_events_failed_total', 'Failed delivery attempts by this process (each retried or dead-lettered), by endpoint.');
    this.deadLettered = counter(
      'berth_events_dead_lettered_total',
      'Events given up on after their retries (or refused for good) and put on the dead-letter list, by endpoint.',
    );
    this.dropped = counter(
      'berth_events_dropped_total',
      'Events the log dropped (events.maxEvents reached) before the endpoint had them, by endpoint: they are never delivered.',
    );
    this.queued = gauge('berth_events_queued', 'Events logged and not yet handled for the endpoint (its backlog).');
    this.lag = gauge('berth_events_lag_seconds', 'Age of the oldest event the endpoint has not had yet; 0 when it is up to date.');
    for (const endpoint of endpoints) {
      for (const c of [this.delivered, this.failed, this.deadLettered, this.dropped]) c.inc({ endpoint }, 0);
      this.queued.set({ endpoint }, 0);
      this.lag.set({ endpoint }, 0);
    }
  }

  /** For EventService's `observe`. */
  record<E extends LaneEvent>(o: LaneObservation<E>): void {
    const labels = { endpoint: o.endpoint };
    switch (o.kind) {
      case 'delivered':
        this.delivered.inc(labels);
        return;
      case 'failed':
        this.failed.inc(labels);
        return;
      case 'dead_lettered':
        this.failed.inc(labels);
        this.deadLettered.inc(labels);
        return;
      case 'dropped':
        this.dropped.inc(labels, o.count);
        return;
      case 'progress':
        this.queued.set(labels, o.behind);
        this.lag.set(labels, o.lagSeconds);
    }
  }
}
