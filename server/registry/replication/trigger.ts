// A push rule reacting to this Berth's durable event stream within seconds: each rule is one delivery
// lane of the events service (claimed by one process at a time, its cursor moved only after a batch,
// failures retried with backoff, then dead-lettered), whose "endpoint" is the rule's sync. Whatever an
// event misses (the target down past the retries, events switched off) the next reconcile repairs.
import { setMaxListeners } from 'node:events';
import type { RegistryEvent } from '../events/event.js';
import type { DeliveryOutcome, EndpointTransport } from '../events/lane.js';
import type { RuleSync, TagResult, RuleScope } from './sync.js';

// tag.moved always comes with the manifest.pushed of the same change, which names the tag already.
const ACTIONS = new Set(['manifest.pushed', 'tag.deleted', 'manifest.deleted']);

export interface TriggerDeps {
  rule: RuleScope;
  sync: RuleSync;
  /** Whether a failure is worth trying again (the target down, rate-limited, timed out). */
  retryable(err: unknown): boolean;
  /** Every tag the event led to, for status, metrics and audit. */
  each(result: TagResult): void;
}

/** The lane name of a rule: kept apart from configured webhook endpoints by the prefix. */
export function triggerLaneName(rule: string): string {
  return `replication:${rule}`;
}

export function ruleTransport(deps: TriggerDeps): EndpointTransport<RegistryEvent> {
  const { rule, sync } = deps;
  return {
    accepts: (event) => ACTIONS.has(event.action) && event.repository !== undefined && rule.coversRepository(event.repository),
    deliver: async (event, _attempt, signal): Promise<DeliveryOutcome> => {
      const repo = event.repository as string;
      // The lane's signal, shared by the batch's parallel syncs and every request in them.
      setMaxListeners(1000, signal);
      try {
        for (const tag of tagsOf(event).filter((t) => rule.coversTag(t))) deps.each(await sync.syncTag(repo, tag, signal));
        // An untagged manifest with a subject (a signature, an SBOM) follows a subject already replicated.
        if (event.action === 'manifest.pushed' && event.target.digest && event.target.subject && (event.target.tags?.length ?? 0) === 0) {
          await sync.syncDigest(repo, event.target.digest, event.target.subject, signal);
        }
        return { ok: true, retryable: false };
      } catch (err) {
        return { ok: false, retryable: deps.retryable(err), error: err instanceof Error ? err.message : String(err) };
      }
    },
  };
}

/** The tags an event is about: syncTag looks at both sides, so a push, a move and a delete are the same call. */
function tagsOf(event: RegistryEvent): string[] {
  if (event.target.tag !== undefined) return [event.target.tag];
  return event.target.tags ?? [];
}
