import { api } from '../api.js';
import { h } from '../dom.js';
import { facts, words } from '../generic.js';
import { current, generationNow, type Page } from '../router.js';

const TITLES: Record<string, [string, string | undefined]> = {
  caller: ['You', undefined],
  gc: ['Garbage collection', '#/gc'],
  retention: ['Retention', '#/retention'],
  quotas: ['Storage and quotas', '#/storage'],
  events: ['Events', '#/activity'],
  replication: ['Replication', '#/replication'],
};

/** The dashboard: one card per feature's status, as /api/v1/status gives what this caller may see. */
export const overviewPage: Page = async (view) => {
  const gen = generationNow();
  view.append(h('h1', {}, 'Overview'));
  const status = await api<Record<string, Record<string, unknown>>>('/api/v1/status');
  if (!current(gen)) return;
  const grid = h('div', { class: 'cards' });
  for (const [section, body] of Object.entries(status)) {
    let content: Node;
    if (body.access === false) content = h('p', { class: 'muted' }, 'You may not see this.');
    else if (body.enabled === false) content = h('p', { class: 'muted' }, 'Turned off in the configuration.');
    else content = facts(body);
    const [title, href] = TITLES[section] ?? [words(section), undefined];
    const more = href !== undefined && body.access !== false ? h('p', {}, h('a', { href }, `Open ${title.toLowerCase()}`)) : null;
    grid.append(h('section', { class: 'card', 'aria-labelledby': `card-${section}` }, h('h2', { id: `card-${section}` }, title), content, more));
  }
  view.append(grid);
};
