// Quota usage over all namespaces for a dashboard: totals and the largest namespaces. Reads each
// namespace's usage record (one lookup each), never its digests, and at most a bounded number of
// namespaces, so its cost does not grow with the repositories or blobs a namespace holds.
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import type { QuotaRule } from './config.js';
import { namespacePage } from './report.js';
import { limitFor } from './rules.js';

export interface NamespaceUsageLine {
  namespace: string;
  /** The glob of the rule that applies; absent: no rule, unlimited. */
  rule?: string;
  limitBytes?: number;
  usedBytes: number;
  reservedBytes: number;
  /** usedBytes as a percentage of limitBytes, one decimal; absent without a limit. */
  percent?: number;
}

export interface QuotaOverview {
  /** Namespaces looked at (with a rule or usage). */
  namespaces: number;
  /** False when there were more than the overview looks at: totals and top cover the first ones in byte order. */
  complete: boolean;
  totals: { usedBytes: number; reservedBytes: number; limitedNamespaces: number; overLimit: number };
  /** The largest namespaces by usedBytes, ties by name. */
  top: NamespaceUsageLine[];
}

export interface OverviewOptions {
  now: number;
  /** Namespaces looked at, at most (default 1000). */
  maxNamespaces?: number;
  /** Entries in `top` (default 10). */
  top?: number;
}

const PAGE = 200;

export async function quotaOverview(metadata: MetadataStore, rules: readonly QuotaRule[], options: OverviewOptions): Promise<QuotaOverview> {
  const max = options.maxNamespaces ?? 1000;
  const lines: NamespaceUsageLine[] = [];
  let last: string | undefined;
  let complete = true;
  for (;;) {
    const page = await namespacePage(metadata, rules, { n: Math.min(PAGE, max - lines.length), last });
    const usages = await Promise.all(page.namespaces.map((ns) => metadata.quotas.usage(ns, options.now)));
    page.namespaces.forEach((namespace, i) => {
      const usage = usages[i] as (typeof usages)[number];
      const applied = limitFor(rules, namespace);
      lines.push({
        namespace,
        ...(applied ? { rule: applied.rule, limitBytes: applied.limitBytes } : {}),
        usedBytes: usage.bytes,
        reservedBytes: usage.reserved,
        ...(applied ? { percent: percentOf(usage.bytes, applied.limitBytes) } : {}),
      });
    });
    if (page.next === undefined) break;
    if (lines.length >= max) {
      // The page's `next` only says there may be more: look once.
      complete = (await namespacePage(metadata, rules, { n: 1, last: page.next })).namespaces.length === 0;
      break;
    }
    last = page.next;
  }
  const totals = { usedBytes: 0, reservedBytes: 0, limitedNamespaces: 0, overLimit: 0 };
  for (const line of lines) {
    totals.usedBytes += line.usedBytes;
    totals.reservedBytes += line.reservedBytes;
    if (line.limitBytes !== undefined) {
      totals.limitedNamespaces++;
      if (line.usedBytes > line.limitBytes) totals.overLimit++;
    }
  }
  const top = [...lines]
    .sort((a, b) => b.usedBytes - a.usedBytes || (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0))
    .slice(0, options.top ?? 10);
  return { namespaces: lines.length, complete, totals, top };
}

function percentOf(used: number, limit: number): number {
  if (limit === 0) return used === 0 ? 0 : 100;
  return Math.round((used / limit) * 1000) / 10;
}
