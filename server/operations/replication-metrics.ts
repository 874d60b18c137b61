// Replication metrics. Labels are bounded by the configuration (one `rule` value per configured rule)
// and by the fixed outcome and result names.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ReplicationObservation } from '../registry/replication/service.js';

export class ReplicationMetrics {
  private readonly tags: Counter<'rule' | 'outcome' | 'via'>;
  private readonly failures: Counter<'rule' | 'via'>;
  private readonly bytes: Counter<'rule'>;
  private readonly runs: Counter<'rule' | 'result'>;
  private readonly lag: Gauge<'rule'>;
  private readonly behind: Gauge<'rule'>;
  private readonly lastRun: Gauge<'rule'>;

  constructor(registry: Registry, rules: readonly string[]) {
    this.tags = new Counter({
      name: 'berth_replication_tags_total',
      help: 'Tags a replication rule looked at, by outcome (copied, in_sync, conflict_skipped, overwritten, backed_up, deleted, not_on_source) and trigger (event, reconcile).',
      labelNames: ['rule', 'outcome', 'via'] as const,
      registers: [registry],
    });
    this.failures = new Counter({
      name: 'berth_replication_failures_total',
      help: 'Tags a replication rule failed to bring in step (retried by the trigger, and by the next reconcile).',
      labelNames: ['rule', 'via'] as const,
      registers: [registry],
    });
    this.bytes = new Counter({
      name: 'berth_replication_sent_bytes_total',
      help: 'Blob bytes a replication rule sent to its target (blobs present or mounted there send none).',
      labelNames: ['rule'] as const,
      registers: [registry],
    });
    this.runs = new Counter({
      name: 'berth_replication_passes_total',
      help: 'Reconcile passes this process ran, by result (ok, partial: some tags failed, failed: the pass stopped).',
      labelNames: ['rule', 'result'] as const,
      registers: [registry],
    });
    this.lag = new Gauge({
      name: 'berth_replication_lag_seconds',
      help: "The longest a covered artifact's target has not matched its source, as of this process's last pass.",
      labelNames: ['rule'] as const,
      // Each cluster worker reports its own last pass: the primary's sum would mean nothing (here and below).
      aggregator: 'max',
      registers: [registry],
    });
    this.behind = new Gauge({
      name: 'berth_replication_behind_artifacts',
      help: 'Artifacts not in step (failed, conflict, copying) as of this process’s last pass (at most the first 100 counted).',
      labelNames: ['rule'] as const,
      aggregator: 'max',
      registers: [registry],
    });
    this.lastRun = new Gauge({
      name: 'berth_replication_last_pass_timestamp_seconds',
      help: 'When the last reconcile pass this process ran for the rule ended.',
      labelNames: ['rule'] as const,
      aggregator: 'max',
      registers: [registry],
    });
    for (const rule of rules) {
      for (const result of ['ok', 'partial', 'failed']) this.runs.inc({ rule, result }, 0);
      for (const via of ['event', 'reconcile']) this.failures.inc({ rule, via }, 0);
      this.bytes.inc({ rule }, 0);
    }
  }

  record(observation: ReplicationObservation): void {
    const { rule } = observation;
    switch (observation.kind) {
      case 'tag':
        this.tags.inc({ rule, outcome: observation.result.outcome, via: observation.via });
        if (observation.result.bytes > 0) this.bytes.inc({ rule }, observation.result.bytes);
        return;
      case 'failure':
        this.failures.inc({ rule, via: observation.via });
        return;
      case 'run':
        this.runs.inc({ rule, result: observation.summary.result ?? 'failed' });
        this.lastRun.set({ rule }, (observation.summary.finishedAt ?? Date.now()) / 1000);
        return;
      case 'lag':
        this.lag.set({ rule }, observation.seconds);
        this.behind.set({ rule }, observation.behind);
        return;
    }
  }
}
