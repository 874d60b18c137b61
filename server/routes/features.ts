import type { BerthConfig } from '../config.js';

/** The optional features the management API reports on, in the order /api/v1/info lists them. */
export const FEATURES = ['stats', 'events', 'gc', 'retention', 'replication', 'quotas', 'proxy'] as const;
export type Feature = (typeof FEATURES)[number];

/**
 * Whether each feature is on in this configuration. Quotas have no switch: they are on when a rule
 * sets a limit; replication when a rule is enabled; the proxy when an upstream is configured.
 */
export function enabledFeatures(config: BerthConfig): Record<Feature, boolean> {
  return {
    stats: config.stats.enabled,
    events: config.events.enabled,
    gc: config.gc.enabled,
    retention: config.retention.enabled,
    replication: config.replication.rules.some((rule) => rule.enabled),
    quotas: config.quotas.rules.length > 0,
    proxy: config.proxy.upstreams.length > 0,
  };
}
