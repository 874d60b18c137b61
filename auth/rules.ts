import { parse as parseYaml } from 'yaml';
import { FileBacked } from './files.js';
import { globMatch } from './glob.js';
import type { Robot } from './robots.js';
import { type Rule, type RulesFile, rulesFileSchema } from './rules-schema.js';
import { REPOSITORY_ACTIONS } from './scope.js';
import type { AccessNeed } from './types.js';
import { ROBOT_PREFIX } from './users.js';

/** Whom a decision is about. Robots carry their own grant, which rules can only narrow with deny. */
export type Subject = { kind: 'anonymous' } | { kind: 'user'; name: string } | { kind: 'robot'; name: string; robot: Robot };

export interface PolicyOptions {
  groups: Record<string, string[]>;
  rules: Rule[];
  rulesFile?: string | undefined;
  userNamespaces: boolean;
  warn?: ((msg: string) => void) | undefined;
}

export function parseRulesFile(text: string | undefined): RulesFile {
  if (text === undefined || text.trim() === '') return { groups: {}, rules: [] };
  const result = rulesFileSchema.safeParse(parseYaml(text) ?? {});
  if (!result.success) {
    throw new Error(result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
  }
  return result.data;
}

/** Login name a subject has in group member lists. */
function memberName(subject: Subject): string | undefined {
  if (subject.kind === 'user') return subject.name;
  if (subject.kind === 'robot') return `${ROBOT_PREFIX}${subject.name}`;
  return undefined;
}

function appliesTo(rule: Rule, subject: Subject, groups: Record<string, string[]>): boolean {
  if (rule.everyone) return true;
  if (subject.kind === 'anonymous') return rule.anonymous;
  if (rule.authenticated) return true;
  if (subject.kind === 'user' && rule.users.includes(subject.name)) return true;
  if (subject.kind === 'robot' && rule.robots.some((g) => globMatch(g, subject.name))) return true;
  const member = memberName(subject);
  return rule.groups.some((g) => member !== undefined && (groups[g] ?? []).includes(member));
}

function coversResource(rule: Rule, type: AccessNeed['type'], name: string): boolean {
  const patterns = type === 'repository' ? rule.repository : rule.registry;
  return patterns !== undefined && patterns.some((p) => globMatch(p, name));
}

function expand(type: AccessNeed['type'], actions: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const a of actions) {
    if (a === '*' && type === 'repository') REPOSITORY_ACTIONS.forEach((x) => out.add(x));
    out.add(a);
  }
  return out;
}

/**
 * Access rules: the union of every matching allow (plus a robot's own grant and, when enabled, a
 * user's own namespace), minus every matching deny. Nothing matching means nothing allowed.
 */
export class Policy {
  private readonly file: FileBacked<RulesFile> | undefined;

  constructor(private readonly options: PolicyOptions) {
    const warn = options.warn ?? (() => {});
    this.file = options.rulesFile
      ? new FileBacked(options.rulesFile, parseRulesFile, (err) =>
          warn(`rules file ${options.rulesFile}: keeping the previous rules: ${(err as Error).message}`),
        )
      : undefined;
  }

  async load(): Promise<void> {
    await this.file?.load();
  }

  private async current(): Promise<{ groups: Record<string, string[]>; rules: Rule[] }> {
    const loaded = this.file ? await this.file.get() : { groups: {}, rules: [] };
    const groups: Record<string, string[]> = { ...this.options.groups };
    for (const [g, members] of Object.entries(loaded.groups)) groups[g] = [...(groups[g] ?? []), ...members];
    return { groups, rules: [...this.options.rules, ...loaded.rules] };
  }

  /** Actions the subject may take on the resource; contains `*` only when it may take them all. */
  async allowedActions(subject: Subject, type: AccessNeed['type'], name: string): Promise<Set<string>> {
    return this.actionsUnder(await this.applying(subject), subject, type, name);
  }

  /** The rules that name the subject (or everyone): resolved once for a batch of resources. */
  private async applying(subject: Subject): Promise<Rule[]> {
    const { groups, rules } = await this.current();
    return rules.filter((rule) => appliesTo(rule, subject, groups));
  }

  private actionsUnder(rules: Rule[], subject: Subject, type: AccessNeed['type'], name: string): Set<string> {
    const allow = new Set<string>();
    const deny = new Set<string>();
    if (subject.kind === 'robot' && type === 'repository' && subject.robot.repositories.some((p) => globMatch(p, name))) {
      expand(type, subject.robot.actions).forEach((a) => allow.add(a));
    }
    if (subject.kind === 'user' && this.options.userNamespaces && type === 'repository' && name.startsWith(`${subject.name}/`)) {
      expand(type, ['*']).forEach((a) => allow.add(a));
    }
    for (const rule of rules) {
      if (!coversResource(rule, type, name)) continue;
      expand(type, rule.allow).forEach((a) => allow.add(a));
      expand(type, rule.deny).forEach((a) => deny.add(a));
    }
    if (deny.has('*')) return new Set();
    const result = new Set([...allow].filter((a) => !deny.has(a)));
    if (type === 'repository') {
      if (REPOSITORY_ACTIONS.every((a) => result.has(a))) result.add('*');
      else result.delete('*');
    }
    return result;
  }

  /** The part of `requested` the subject may have (an empty list when nothing is allowed). */
  async grant(subject: Subject, requested: AccessNeed[]): Promise<AccessNeed[]> {
    const out: AccessNeed[] = [];
    for (const need of requested) {
      const allowed = await this.allowedActions(subject, need.type, need.name);
      const actions = need.actions.filter((a) => allowed.has(a));
      if (actions.length > 0) out.push({ type: need.type, name: need.name, actions });
    }
    return out;
  }

  async allows(subject: Subject, need: AccessNeed): Promise<boolean> {
    const allowed = await this.allowedActions(subject, need.type, need.name);
    return need.actions.every((a) => allowed.has(a));
  }

  /**
   * `allows` for many resources with one look at the rules file and one pass over who the rules
   * name: a repository list of 10,000 names asked one by one cost a `stat` and a rule scan each.
   */
  async allowsEach(subject: Subject, needs: AccessNeed[]): Promise<boolean[]> {
    const rules = await this.applying(subject);
    return needs.map((need) => {
      const allowed = this.actionsUnder(rules, subject, need.type, need.name);
      return need.actions.every((a) => allowed.has(a));
    });
  }
}
