// Replication in a server process: per rule, a reconcile pass on its schedule (and on request), and
// for push rules the trigger lane on the event stream. Every process runs the same loops; the leases
// make one pass per rule and one lane holder per rule across all of them.
import type { FastifyBaseLogger } from 'fastify';
import type { ReplicationMetadata } from '../../../storage-drivers/metadata/replication-types.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { reconcile, type ReconcileRule } from './reconcile.js';
import type { RunSummary } from './rule-state.js';
import { ruleStatus, type RuleStatus } from './status.js';
import type { TagResult } from './sync.js';

export type { ArtifactStatus, RuleStatus } from './status.js';

export interface RuleRuntime extends ReconcileRule {
  direction: 'push' | 'pull';
  /** The other registry's configured name. */
  registry: string;
  /** 0: no scheduled pass (only on request, and the trigger). */
  reconcileMs: number;
}

export type ReplicationObservation =
  | { kind: 'tag'; rule: string; result: TagResult; via: 'event' | 'reconcile' }
  | { kind: 'failure'; rule: string; repository: string; tag: string; error: string; via: 'event' | 'reconcile' }
  | { kind: 'run'; rule: string; summary: RunSummary }
  | { kind: 'lag'; rule: string; seconds: number; behind: number };

export interface ReplicationServiceOptions {
  rules: readonly RuleRuntime[];
  metadata: MetadataStore;
  records: ReplicationMetadata;
  holder: string;
  leaseMs: number;
  runTimeoutMs: number;
  now(): number;
  log: FastifyBaseLogger;
  observe?(observation: ReplicationObservation): void;
}

export class ReplicationService {
  private readonly stop = new AbortController();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Map<string, Promise<void>>();
  private readonly byName: Map<string, RuleRuntime>;

  constructor(private readonly options: ReplicationServiceOptions) {
    this.byName = new Map(options.rules.map((rule) => [rule.scope.name, rule]));
  }

  get rules(): readonly RuleRuntime[] {
    return this.options.rules;
  }

  start(): void {
    for (const rule of this.options.rules) {
      if (rule.reconcileMs <= 0) continue;
      const timer = setInterval(() => void this.runNow(rule.scope.name), rule.reconcileMs);
      timer.unref();
      this.timers.push(timer);
    }
  }

  /**
   * Starts a reconcile pass of `rule` in this process unless one runs here already; resolves when it
   * ends (at once, doing nothing, when another process holds the rule). Undefined: no such rule.
   */
  runNow(name: string): Promise<void> | undefined {
    const rule = this.byName.get(name);
    if (!rule || this.stop.signal.aborted) return undefined;
    const going = this.running.get(name);
    if (going) return going;
    const run = this.pass(rule).finally(() => this.running.delete(name));
    this.running.set(name, run);
    return run;
  }

  /** Whether a pass of `name` runs in this process now. */
  isRunning(name: string): boolean {
    return this.running.has(name);
  }

  async status(name: string): Promise<RuleStatus | undefined> {
    const rule = this.byName.get(name);
    if (!rule) return undefined;
    return ruleStatus(this.options.records, { name, direction: rule.direction, registry: rule.registry }, this.options.now);
  }

  async close(): Promise<void> {
    this.stop.abort();
    for (const timer of this.timers) clearInterval(timer);
    await Promise.allSettled([...this.running.values()]);
  }

  /** For the trigger lane: a tag synced because of an event. */
  recordEventResult(rule: string, result: TagResult): void {
    this.observe({ kind: 'tag', rule, result, via: 'event' });
  }

  private async pass(rule: RuleRuntime): Promise<void> {
    const { options } = this;
    const name = rule.scope.name;
    try {
      const result = await reconcile(
        rule,
        {
          metadata: options.metadata,
          records: options.records,
          holder: options.holder,
          leaseMs: options.leaseMs,
          runTimeoutMs: options.runTimeoutMs,
          now: options.now,
          each: (r) => {
            if ('failed' in r) {
              options.log.warn({ rule: name, repository: r.failed, tag: r.tag, err: r.error }, `replication: ${r.error.message}`);
              this.observe({ kind: 'failure', rule: name, repository: r.failed, tag: r.tag, error: r.error.message, via: 'reconcile' });
            } else {
              this.observe({ kind: 'tag', rule: name, result: r, via: 'reconcile' });
            }
          },
        },
        this.stop.signal,
      );
      if (!result.ran) return;
      this.observe({ kind: 'run', rule: name, summary: result.summary });
      if (result.summary.result === 'failed') options.log.warn({ rule: name, summary: result.summary }, 'replication pass failed');
      else if (result.summary.repositories > 0) options.log.info({ rule: name, summary: result.summary }, 'replication pass finished');
      const status = await this.status(name);
      if (status) this.observe({ kind: 'lag', rule: name, seconds: status.lagSeconds, behind: status.behind.length });
    } catch (err) {
      if (!this.stop.signal.aborted) options.log.warn({ err, rule: name }, 'replication pass could not start');
    }
  }

  private observe(observation: ReplicationObservation): void {
    try {
      this.options.observe?.(observation);
    } catch (err) {
      this.options.log.warn({ err }, 'replication observer failed');
    }
  }
}
