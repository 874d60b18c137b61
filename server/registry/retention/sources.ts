// Where retention gets pull statistics and immutable-tag rules, for the server and for `berth retention`
// alike: the store's pull counts, the configured immutable rules. With stats.enabled false nothing is
// counted, so pulls are unknown: config validation refuses pull rules then, and a command run refuses
// a policy with a pull rule rather than judge every tag "never pulled" and delete tags still in use.
import type { BerthConfig } from '../../config.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { ImmutableTagRules } from '../immutable/rules.js';
import type { IsImmutable, PullInfo, PullsOf } from './evaluate.js';

export interface RetentionSources {
  /** Undefined: no pull statistics available in this process. */
  pullsOf?: PullsOf;
  isImmutable: IsImmutable;
}

export function retentionSources(config: BerthConfig, metadata: MetadataStore): RetentionSources {
  const rules = new ImmutableTagRules(config.immutableTags.rules);
  const isImmutable: IsImmutable = (repo, tag) => rules.match(repo, tag)?.rule;
  if (!config.stats.enabled) return { isImmutable };
  const pullsOf: PullsOf = async (repo, tags) => {
    const tallies = await metadata.pulls.tagPulls(repo, tags);
    const out = new Map<string, PullInfo>();
    for (const [tag, tally] of tallies) out.set(tag, { pulls: tally.count, lastPulledAt: tally.last });
    return out;
  };
  return { pullsOf, isImmutable };
}
