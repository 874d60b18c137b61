// Quota metrics with bounded cardinality: only namespaces that match a rule are labelled, at most
// quotas.metricsNamespaces of them (the rest are summed under 'other' for refusals, left out of the gauges).
import { Counter, Gauge, type Registry } from 'prom-client';
import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import type { QuotaConfig } from '../registry/quotas/config.js';
import { limitFor } from '../registry/quotas/rules.js';
import type { QuotaStage } from '../registry/quotas/service.js';

const OTHER = 'other';
const STAGES: QuotaStage[] = ['start', 'stream', 'finish', 'mount', 'manifest'];
/** A scrape waits at most this long for the namespace records. */
const READ_TIMEOUT_MS = 2000;

export class QuotaMetrics {
  private readonly labelled = new Set<string>();
  private readonly refusals: Counter<'stage' | 'namespace'>;

  constructor(
    registry: Registry,
    private readonly config: QuotaConfig,
    private readonly metadata: MetadataStore,
  ) {
    this.refusals = new Counter({
      name: 'berth_quota_refusals_total',
      help: `Pushes refused by a namespace's storage quota, by stage (start, stream, finish, mount, manifest) and namespace ('${OTHER}' past the label cap).`,
      labelNames: ['stage', 'namespace'] as const,
      registers: [registry],
    });
    for (const stage of STAGES) this.refusals.inc({ stage, namespace: OTHER }, 0);
    const used: Gauge<'namespace'> = new Gauge({
      name: 'berth_quota_used_bytes',
      help: 'Stored bytes counted against each namespace that matches a quota rule (read from the metadata store at scrape time).',
      labelNames: ['namespace'] as const,
      // Every process reads the same shared records: summing would count them once per process.
      aggregator: 'max',
      registers: [registry],
      collect: (): Promise<void> => this.collect(used, limit),
    });
    const limit = new Gauge({
      name: 'berth_quota_limit_bytes',
      help: "Each labelled namespace's limit from its quota rule.",
      labelNames: ['namespace'] as const,
      aggregator: 'max',
      registers: [registry],
    });
  }

  /** For buildApp's `onQuotaRefused`. */
  recordRefusal(stage: QuotaStage, ns: string): void {
    this.refusals.inc({ stage, namespace: this.label(ns) ?? OTHER });
  }

  private label(ns: string): string | undefined {
    if (this.labelled.has(ns)) return ns;
    if (limitFor(this.config.rules, ns) === undefined || this.labelled.size >= this.config.metricsNamespaces) return undefined;
    this.labelled.add(ns);
    return ns;
  }

  private async collect(used: Gauge<'namespace'>, limit: Gauge<'namespace'>): Promise<void> {
    if (this.config.rules.length === 0 || this.config.metricsNamespaces === 0) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error('quota read timed out')), READ_TIMEOUT_MS);
      });
      const read = async () => {
        const names = await this.metadata.quotas.namespaces({ n: this.config.metricsNamespaces * 4 });
        const now = Date.now();
        const values: Array<[string, number, number]> = [];
        for (const ns of names) {
          const applied = limitFor(this.config.rules, ns);
          if (applied === undefined || this.label(ns) === undefined) continue;
          values.push([ns, (await this.metadata.quotas.usage(ns, now)).bytes, applied.limitBytes]);
        }
        return values;
      };
      const values = await Promise.race([read(), timeout]);
      used.reset();
      limit.reset();
      for (const [ns, bytes, max] of values) {
        used.set({ namespace: ns }, bytes);
        limit.set({ namespace: ns }, max);
      }
    } catch {
      // Stale numbers would look like a namespace that stopped growing; the metadata error metrics tell why.
      used.reset();
      limit.reset();
    } finally {
      clearTimeout(timer);
    }
  }
}
