import { api } from '../api.js';
import { confirmAction } from '../confirm.js';
import { announce, h } from '../dom.js';
import { facts, records } from '../generic.js';
import { current, errorBox, generationNow, link, type Page } from '../router.js';

/** The status of garbage collection, with buttons for a dry run and a real pass. */
export const gcPage: Page = async (view) => {
  const gen = generationNow();
  const box = h('div', {});
  const start = (dryRun: boolean) => async () => {
    if (
      !dryRun &&
      !(await confirmAction('Start garbage collection?', 'Deletes blobs and manifests nothing references any more. Pushes keep working meanwhile.', 'Start'))
    )
      return;
    try {
      await api(`/api/v1/gc${dryRun ? '?dryRun=1' : ''}`, { method: 'POST' });
      announce(dryRun ? 'Dry run started' : 'Garbage collection started');
    } catch (err) {
      announce(err instanceof Error ? err.message : String(err));
    }
    await load();
  };
  const load = async () => {
    try {
      const status = await api<Record<string, unknown>>('/api/v1/gc');
      if (current(gen)) box.replaceChildren(facts(status));
    } catch (err) {
      if (current(gen)) box.replaceChildren(errorBox(err));
    }
  };
  view.append(
    h('h1', {}, 'Garbage collection'),
    h(
      'div',
      { class: 'toolbar' },
      h('button', { type: 'button', onclick: () => void start(true)() }, 'Dry run'),
      h('button', { type: 'button', class: 'danger', onclick: () => void start(false)() }, 'Run now'),
      h('button', { type: 'button', onclick: () => void load() }, 'Refresh'),
    ),
    box,
  );
  await load();
};

interface PreviewEntry {
  repository: string;
  policy: string | null;
  total?: number;
  kept?: number;
  deleted?: number;
  tags?: Array<{ tag: string; keep?: boolean; verdict?: string; reason?: string; reasons?: string[] }>;
}

/** Retention: the configured policies and what they would delete now (a preview changes nothing). */
export const retentionPage: Page = async (view) => {
  const gen = generationNow();
  view.append(h('h1', {}, 'Retention'));
  const status = await api<Record<string, unknown>>('/api/v1/retention');
  if (!current(gen)) return;
  const previewBox = h('div', { 'aria-live': 'polite' });
  const repo = h('input', { id: 'retention-repo', type: 'search', placeholder: 'all repositories', autocomplete: 'off' });
  const preview = async () => {
    previewBox.replaceChildren(h('p', {}, 'Working out what would be deleted…'));
    try {
      const q = repo.value.trim() ? `?${new URLSearchParams({ repository: repo.value.trim() }).toString()}` : '';
      const answer = await api<{ repositories: PreviewEntry[] }>(`/api/v1/retention/preview${q}`);
      if (!current(gen)) return;
      const withPolicy = answer.repositories.filter((r) => r.policy !== null);
      previewBox.replaceChildren(
        h('p', {}, `${withPolicy.length} repositories under a policy; ${withPolicy.reduce((s, r) => s + (r.deleted ?? 0), 0)} tags would be deleted.`),
        records(
          'What retention would do now',
          withPolicy.map((r) => ({ repository: r.repository, policy: r.policy, tags: r.total, kept: r.kept, wouldDelete: r.deleted })),
        ),
      );
    } catch (err) {
      if (current(gen)) previewBox.replaceChildren(errorBox(err));
    }
  };
  view.append(
    facts(status, ['state']),
    h('h2', {}, 'Preview'),
    h(
      'form',
      { class: 'toolbar', onsubmit: (e: Event) => (e.preventDefault(), void preview()) },
      h('div', {}, h('label', { for: 'retention-repo' }, 'Repository (optional)'), repo),
      h('div', { class: 'end' }, h('button', { type: 'submit' }, 'Preview')),
    ),
    previewBox,
  );
};

interface RuleStatus {
  name: string;
  direction: string;
  registry: string;
  enabled: boolean;
  onPush?: boolean;
  running?: boolean;
  status?: Record<string, unknown>;
}

/** Replication rules and how far each has got. */
export const replicationPage: Page = async (view) => {
  const gen = generationNow();
  view.append(h('h1', {}, 'Replication'));
  const answer = await api<{ rules: RuleStatus[] }>('/api/v1/replication');
  if (!current(gen)) return;
  if (answer.rules.length === 0) view.append(h('p', {}, 'No replication rules are configured (see docs/replication.md).'));
  for (const rule of answer.rules) {
    view.append(
      h(
        'section',
        { class: 'card', 'aria-labelledby': `rule-${rule.name}` },
        h('h2', { id: `rule-${rule.name}` }, rule.name),
        facts({ direction: rule.direction, registry: rule.registry, enabled: rule.enabled, onPush: rule.onPush, running: rule.running }),
        rule.status ? facts(rule.status) : null,
      ),
    );
  }
  view.append(h('p', {}, h('a', { href: link('/activity') }, 'See the activity feed')));
};
