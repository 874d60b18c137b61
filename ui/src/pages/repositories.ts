import { api } from '../api.js';
import { bytes, debounce, h, when, fill } from '../dom.js';
import { current, errorBox, generationNow, link, type Page } from '../router.js';
import { Pager } from '../pager.js';
import type { RepositorySummary } from '../wire.js';

const SORTS: Array<[string, string]> = [
  ['name', 'Name'],
  ['size', 'Size'],
  ['lastPush', 'Last push'],
  ['lastPull', 'Last pull'],
];

/** The repository list: search by name, sort, pages of 50 (the API pages by the last name shown). */
export function repositoriesPage(signedIn: () => boolean): Page {
  return async (view, params) => {
    const gen = generationNow();
    const search = h('input', { id: 'repo-search', type: 'search', value: params.get('q') ?? '', placeholder: 'e.g. team/app', autocomplete: 'off' });
    const sort = h(
      'select',
      { id: 'repo-sort' },
      ...SORTS.map(([v, label]) => h('option', { value: v, selected: v === (params.get('sort') ?? 'name') }, label)),
    );
    const order = h(
      'select',
      { id: 'repo-order' },
      h('option', { value: 'asc', selected: params.get('order') !== 'desc' }, 'Ascending'),
      h('option', { value: 'desc', selected: params.get('order') === 'desc' }, 'Descending'),
    );
    const results = h('div', { 'aria-live': 'polite', 'aria-busy': 'false' });
    view.append(
      h('h1', {}, 'Repositories'),
      h(
        'form',
        { class: 'toolbar', role: 'search', onsubmit: (e: Event) => e.preventDefault() },
        h('div', {}, h('label', { for: 'repo-search' }, 'Search by name'), search),
        h('div', {}, h('label', { for: 'repo-sort' }, 'Sort by'), sort),
        h('div', {}, h('label', { for: 'repo-order' }, 'Order'), order),
      ),
      results,
    );

    const pager = new Pager(async (last) => {
      const q = new URLSearchParams({ n: '50', sort: sort.value, order: order.value });
      if (search.value.trim() !== '') q.set('q', search.value.trim());
      if (last !== undefined) q.set('last', last);
      return api<{ repositories: RepositorySummary[]; next?: string }>(`/api/v1/repositories?${q.toString()}`);
    });

    const show = async (move: 'first' | 'next' | 'previous') => {
      const state = new URLSearchParams({ sort: sort.value, order: order.value });
      if (search.value.trim() !== '') state.set('q', search.value.trim());
      history.replaceState(null, '', link('/', Object.fromEntries(state)));
      results.setAttribute('aria-busy', 'true');
      try {
        const page = await pager.load(move);
        if (!current(gen)) return;
        const rows = page.repositories.map((r) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, h('a', { href: link('/repo', { name: r.name }) }, r.name)),
            h('td', { class: 'num' }, r.tagCount),
            h('td', { class: 'num' }, bytes(r.sizeBytes)),
            h('td', {}, when(r.lastPushedAt)),
            h('td', {}, when(r.lastPulledAt)),
            h('td', { class: 'num' }, r.pulls),
          ),
        );
        fill(
          results,
          rows.length === 0
            ? h(
                'p',
                {},
                search.value.trim() === '' ? 'No repositories you may pull yet.' : `No repository name contains “${search.value.trim()}”.`,
                signedIn() ? null : h('span', {}, ' ', h('a', { href: '#/signin' }, 'Sign in'), ' to see the ones your account may pull.'),
              )
            : h(
                'div',
                { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': 'Repositories' },
                h(
                  'table',
                  { id: 'repositories' },
                  h('caption', { class: 'visually-hidden' }, 'Repositories'),
                  h('thead', {}, h('tr', {}, ...['Name', 'Tags', 'Size', 'Last push', 'Last pull', 'Pulls (today)'].map((c) => h('th', { scope: 'col' }, c)))),
                  h('tbody', {}, ...rows),
                ),
              ),
          pager.controls(show, 'repositories'),
        );
      } catch (err) {
        if (current(gen)) fill(results, errorBox(err));
      } finally {
        results.setAttribute('aria-busy', 'false');
      }
    };
    search.addEventListener(
      'input',
      debounce(() => void show('first'), 250),
    );
    sort.addEventListener('change', () => void show('first'));
    order.addEventListener('change', () => void show('first'));
    await show('first');
  };
}
