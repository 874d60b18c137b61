// What the quota API and `berth quotas` show per namespace. The exclusive/shared split is computed on
// demand from the namespace's digests and the repositories holding each one, bounded per namespace.
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import type { QuotaRule } from './config.js';
import { limitFor, namespaceOf } from './rules.js';

export interface NamespaceReport {
  namespace: string;
  /** The glob of the rule that applies; absent: no rule, unlimited. */
  rule?: string;
  limitBytes?: number;
  usedBytes: number;
  digests: number;
  reservedBytes: number;
  /** Bytes only this namespace holds: freed if it were deleted (after GC). */
  exclusiveBytes: number;
  /** Bytes it holds that other namespaces hold too. */
  sharedBytes: number;
  /** False when the namespace held more digests than the report looks at: exclusive and shared cover only those. */
  exact: boolean;
}

export interface ReportOptions {
  now: number;
  /** At most this many digests per namespace are split into exclusive and shared (default 10,000). */
  maxDigests?: number;
}

/** Repositories looked at per digest to find another namespace holding it. */
const HOLDERS_PER_DIGEST = 100;

export async function namespaceReport(metadata: MetadataStore, rules: readonly QuotaRule[], ns: string, options: ReportOptions): Promise<NamespaceReport> {
  const usage = await metadata.quotas.usage(ns, options.now);
  const applied = limitFor(rules, ns);
  const max = options.maxDigests ?? 10_000;
  let exclusiveBytes = 0;
  let sharedBytes = 0;
  let seen = 0;
  let cursor: string | undefined;
  let exact = true;
  do {
    const page = await metadata.quotas.digests(ns, cursor, Math.min(500, max - seen));
    for (const { digest, size } of page.digests) {
      const repos = await metadata.blobRepositories(digest, HOLDERS_PER_DIGEST);
      if (repos.some((repo) => namespaceOf(repo) !== ns)) sharedBytes += size;
      else exclusiveBytes += size;
    }
    seen += page.digests.length;
    cursor = page.next;
    if (cursor !== undefined && seen >= max) {
      exact = false;
      break;
    }
  } while (cursor !== undefined);
  return {
    namespace: ns,
    ...(applied ? { rule: applied.rule, limitBytes: applied.limitBytes } : {}),
    usedBytes: usage.bytes,
    digests: usage.digests,
    reservedBytes: usage.reserved,
    exclusiveBytes,
    sharedBytes,
    exact,
  };
}

/** Rules naming one namespace (no glob characters): listed even before anything is pushed there. */
function literalNamespaces(rules: readonly QuotaRule[]): string[] {
  return rules.map((r) => r.namespace).filter((ns) => !/[*?]/.test(ns));
}

/**
 * One page of namespaces with a rule or usage, in byte order after `last`: those the store has a
 * record of, and those a rule names literally. `next` is set when there may be more.
 */
export async function namespacePage(
  metadata: MetadataStore,
  rules: readonly QuotaRule[],
  page: { n: number; last?: string | undefined },
): Promise<{ namespaces: string[]; next?: string }> {
  const stored = await metadata.quotas.namespaces(page);
  const after = (ns: string) => page.last === undefined || Buffer.compare(Buffer.from(ns), Buffer.from(page.last)) > 0;
  const merged = [...new Set([...stored, ...literalNamespaces(rules).filter(after)])].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const namespaces = merged.slice(0, page.n);
  const last = namespaces[namespaces.length - 1];
  const more = stored.length === page.n || merged.length > page.n;
  return more && last !== undefined ? { namespaces, next: last } : { namespaces };
}
