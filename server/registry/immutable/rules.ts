import { globMatch } from '../../../auth/glob.js';
import type { TokenImmutability } from '../../../auth/tag-patterns.js';
import type { ImmutableRuleConfig } from './config-schema.js';

/** Why a tag is immutable: the rule, named so a person can find it. */
export interface ImmutableMatch {
  /** e.g. `immutableTags.rules[0] (team/** v*)` or `token claim tag_immutable_patterns (^v\d+)`. */
  rule: string;
  source: 'config' | 'token';
  /** For config rules: the index in immutableTags.rules. */
  index?: number;
  description?: string;
}

/** One configured rule as the API shows it. */
export interface DescribedRule {
  rule: string;
  index: number;
  repositories: string[];
  tags: string[];
  description?: string;
}

const TOKEN_CLAIM = 'token claim tag_immutable_patterns';

/**
 * Decides which tags are immutable: the configured rules (`immutableTags.rules`), then the patterns the
 * request's token carries for the repository. A token can only add immutability; it cannot lift a rule.
 * Matching is by name only, so the answer never depends on where a tag points.
 */
export class ImmutableTagRules {
  private readonly rules: Array<DescribedRule & { match(repo: string, tag: string): boolean }>;

  constructor(config: ImmutableRuleConfig[]) {
    this.rules = config.map((r, index) => ({
      rule: `immutableTags.rules[${index}] (${r.repositories.join(', ')} ${r.tags.join(', ')})`,
      index,
      repositories: r.repositories,
      tags: r.tags,
      ...(r.description !== undefined ? { description: r.description } : {}),
      match: (repo, tag) => r.repositories.some((g) => globMatch(g, repo)) && r.tags.some((g) => globMatch(g, tag)),
    }));
  }

  /** True when no rule is configured (tokens may still carry patterns). */
  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** Why `tag` in `repo` is immutable, or undefined when it is not. The first configured rule wins. */
  match(repo: string, tag: string, extra?: TokenImmutability): ImmutableMatch | undefined {
    for (const r of this.rules) {
      if (r.match(repo, tag)) return { rule: r.rule, source: 'config', index: r.index, ...(r.description !== undefined ? { description: r.description } : {}) };
    }
    if (extra === undefined) return undefined;
    const unusable = extra.unusable[0];
    if (unusable) return { rule: `${TOKEN_CLAIM} (unusable pattern ${JSON.stringify(unusable.pattern)}: ${unusable.reason})`, source: 'token' };
    const pattern = extra.patterns.find((p) => p.test(tag));
    return pattern ? { rule: `${TOKEN_CLAIM} (${pattern.source})`, source: 'token' } : undefined;
  }

  /** The configured rules that cover `repo` (whatever the tag). */
  forRepository(repo: string): DescribedRule[] {
    return this.rules.filter((r) => r.repositories.some((g) => globMatch(g, repo))).map(({ match: _match, ...described }) => described);
  }
}
