// A rule's status from the shared records alone (rule state and artifact records), so a server's
// API and `berth replication status` in its own process report the same thing.
import type { ReplicationMetadata } from '../../../storage-drivers/metadata/replication-types.js';
import { readRuleState, type RuleState } from './rule-state.js';
import type { ArtifactRecord, ArtifactState } from './sync.js';

export interface ArtifactStatus extends ArtifactRecord {
  key: string;
  /** Seconds the target has not matched the source (0 when synced). */
  lagSeconds: number;
}

export interface RuleStatus {
  name: string;
  direction: 'push' | 'pull';
  registry: string;
  state: RuleState;
  /** Artifact records by state. */
  artifacts: Partial<Record<ArtifactState, number>>;
  /** The longest any covered artifact has been behind, in seconds. */
  lagSeconds: number;
  /** Artifacts not in step (failed, conflict, copying), first ones by key. */
  behind: ArtifactStatus[];
}

/** Records read per status scan; a rule with more artifacts reports on the first this many. */
const STATUS_SCAN_LIMIT = 50_000;
const STATUS_PAGE = 1000;
const BEHIND_LISTED = 100;

export function artifactStatus(key: string, record: ArtifactRecord, now: number): ArtifactStatus {
  const lagSeconds = record.state !== 'synced' && record.behindSince !== undefined ? Math.max(0, (now - record.behindSince) / 1000) : 0;
  return { key, ...record, lagSeconds };
}

export async function ruleStatus(
  records: ReplicationMetadata,
  rule: { name: string; direction: 'push' | 'pull'; registry: string },
  now: () => number,
): Promise<RuleStatus> {
  const { name } = rule;
  const artifacts: RuleStatus['artifacts'] = {};
  const behind: ArtifactStatus[] = [];
  let lagSeconds = 0;
  let after: string | undefined;
  for (let scanned = 0; scanned < STATUS_SCAN_LIMIT;) {
    const page = await records.listArtifacts(name, { after, limit: STATUS_PAGE });
    for (const { key, value } of page) {
      const record = JSON.parse(value) as ArtifactRecord;
      artifacts[record.state] = (artifacts[record.state] ?? 0) + 1;
      if (record.state === 'synced') continue;
      const status = artifactStatus(key, record, now());
      lagSeconds = Math.max(lagSeconds, status.lagSeconds);
      if (behind.length < BEHIND_LISTED) behind.push(status);
    }
    scanned += page.length;
    if (page.length < STATUS_PAGE) break;
    after = page[page.length - 1]?.key;
  }
  return { name, direction: rule.direction, registry: rule.registry, state: await readRuleState(records, name), artifacts, lagSeconds, behind };
}

export const ARTIFACT_STATES: readonly ArtifactState[] = ['synced', 'copying', 'failed', 'conflict'];

/**
 * One page of a rule's artifact records in key order, after `last`, of `state` when given. A filtered
 * page reads on until it is full or STATUS_SCAN_LIMIT records were read (then `more` lets the caller go on).
 */
export async function artifactPage(
  records: ReplicationMetadata,
  rule: string,
  query: { state?: ArtifactState | undefined; n: number; last?: string | undefined },
  now: () => number,
): Promise<{ artifacts: ArtifactStatus[]; more: boolean; last?: string | undefined }> {
  const artifacts: ArtifactStatus[] = [];
  if (query.n === 0) return { artifacts, more: false };
  let after = query.last;
  let scanned = 0;
  while (artifacts.length < query.n) {
    const limit = query.state === undefined ? query.n - artifacts.length + 1 : STATUS_PAGE;
    const page = await records.listArtifacts(rule, { after, limit });
    for (const { key, value } of page) {
      scanned++;
      const record = JSON.parse(value) as ArtifactRecord;
      if (query.state !== undefined && record.state !== query.state) {
        after = key;
        continue;
      }
      if (artifacts.length === query.n) return { artifacts, more: true, last: artifacts[artifacts.length - 1]?.key };
      artifacts.push(artifactStatus(key, record, now()));
      after = key;
    }
    if (page.length < limit) return { artifacts, more: false };
    if (scanned >= STATUS_SCAN_LIMIT) break;
  }
  // Full, or the scan limit reached: the next page starts after the last record looked at.
  return { artifacts, more: true, last: after };
}
