import { api, repoPath } from '../api.js';
import { dailyChart, type DailyCount } from '../chart.js';
import { confirmAction } from '../confirm.js';
import { announce, bytes, debounce, definitions, h, shortDigest, when, fill } from '../dom.js';
import { registryInfo } from '../info.js';
import { Pager } from '../pager.js';
import { current, errorBox, generationNow, link, type Page } from '../router.js';
import type { Session } from '../session.js';
import type { RepositorySummary, TagSummary } from '../wire.js';

interface TagPage {
  tags: TagSummary[];
  next?: string;
}

const COLUMNS: Array<[string, string | undefined]> = [
  ['Tag', 'name'],
  ['Digest', undefined],
  ['Platforms', undefined],
  ['Size', undefined],
  ['Pushed', 'pushedAt'],
  ['Pulls', 'pulls'],
  ['Last pull', 'lastPull'],
];

function kindOf(t: TagSummary): string {
  if (t.platforms.length > 0) return t.platforms.map((p) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`).join(', ');
  return t.mediaType.includes('index') || t.mediaType.includes('list') ? 'index' : 'image';
}

/** A repository: its summary, pulls per day, and the tag table (sort, filter, pages, delete). */
export function repositoryPage(session: Session): Page {
  return async (view, params) => {
    const gen = generationNow();
    const name = params.get('name') ?? '';
    const scopes = [`repository:${name}:pull,delete`];
    view.append(h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Repositories'), ' / '), h('h1', {}, name));
    const summaryBox = h('section', { 'aria-label': 'Summary' });
    const chartBox = h('section', { 'aria-label': 'Pulls per day' });
    const tagsBox = h('section', { 'aria-labelledby': 'tags-title' });
    view.append(summaryBox, chartBox, tagsBox);

    // The tag table and chart do not wait for the summary (sizes are the slow part of it).
    api<RepositorySummary>(repoPath(name), { scopes })
      .then(
        (summary) =>
          current(gen) &&
          summaryBox.append(
            definitions([
              ['Tags', String(summary.tagCount)],
              ['Size (tagged)', bytes(summary.sizeBytes)],
              ['Last push', when(summary.lastPushedAt)],
              ['Last pull', when(summary.lastPulledAt)],
            ]),
          ),
      )
      .catch((err: unknown) => current(gen) && summaryBox.append(errorBox(err)));
    // The first call fetched the token for this repository: what it grants decides the delete buttons.
    await session.token(scopes);
    const info = await registryInfo();
    if (!current(gen)) return;
    const mayDelete = info.deleteEnabled && !info.readOnly && session.allowed('repository', name, 'delete');
    api<{ daily: DailyCount[] }>(`/api/v1/pulls?${new URLSearchParams({ repository: name, days: '30', n: '1' }).toString()}`, { scopes })
      .then((report) => current(gen) && chartBox.append(dailyChart('Pulls per day', report.daily)))
      .catch((err: unknown) => current(gen) && chartBox.append(errorBox(err)));

    let sort = 'name';
    let order: 'asc' | 'desc' = 'asc';
    // The header button clicked to sort: the table is rebuilt, and keyboard focus goes back to it.
    let refocus: string | undefined;
    const filter = h('input', { id: 'tag-filter', type: 'search', autocomplete: 'off', placeholder: 'e.g. 1.2' });
    const size = h('select', { id: 'tag-page-size' }, ...['25', '50', '100', '250'].map((n) => h('option', { value: n, selected: n === '50' }, n)));
    const selected = new Set<string>();
    const bulk = h('button', { type: 'button', class: 'danger', disabled: true }, 'Delete selected');
    const results = h('div', { 'aria-busy': 'false' });
    tagsBox.append(
      h('h2', { id: 'tags-title' }, 'Tags'),
      h(
        'form',
        { class: 'toolbar', onsubmit: (e: Event) => e.preventDefault() },
        h('div', {}, h('label', { for: 'tag-filter' }, 'Filter tags'), filter),
        h('div', {}, h('label', { for: 'tag-page-size' }, 'Tags per page'), size),
        mayDelete ? h('div', { class: 'end' }, bulk) : null,
      ),
      results,
    );

    const pager = new Pager<TagPage>(async (last) => {
      const q = new URLSearchParams({ n: size.value, sort, order });
      if (filter.value.trim() !== '') q.set('q', filter.value.trim());
      if (last !== undefined) q.set('last', last);
      return api<TagPage>(repoPath(name, `/tags?${q.toString()}`), { scopes });
    });

    const deleteTags = async (tags: string[]) => {
      const what = tags.length === 1 ? `tag ${tags[0]}` : `${tags.length} tags`;
      const ok = await confirmAction(
        `Delete ${what}?`,
        `From ${name}: ${tags.join(', ')}. The manifests stay (other tags may point at them); garbage collection frees what nothing references.`,
        `Delete ${what}`,
      );
      if (!ok) return;
      try {
        if (tags.length === 1) {
          await api(repoPath(name, `/tags/${encodeURIComponent(tags[0] as string)}`), { method: 'DELETE', scopes });
          announce(`Deleted tag ${tags[0]}`);
        } else {
          const answer = await api<{ deleted: number; failed: number; results: Array<{ tag?: string; deleted: boolean; message?: string; code?: string }> }>(
            repoPath(name, '/delete'),
            { method: 'POST', scopes, body: { tags } },
          );
          const failed = answer.results.filter((r) => !r.deleted).map((r) => `${r.tag}: ${r.message ?? r.code}`);
          announce(`Deleted ${answer.deleted} of ${tags.length} tags${failed.length ? `; not deleted: ${failed.join('; ')}` : ''}`);
        }
      } catch (err) {
        announce(`Not deleted: ${err instanceof Error ? err.message : String(err)}`);
      }
      selected.clear();
      await show('same');
    };
    bulk.addEventListener('click', () => void deleteTags([...selected]));

    const header = (label: string, key: string | undefined) => {
      if (key === undefined) return h('th', { scope: 'col' }, label);
      const active = key === sort;
      const button = h(
        'button',
        {
          type: 'button',
          class: 'sort',
          'data-sort': key,
          onclick: () => {
            refocus = key;
            order = active && order === 'asc' ? 'desc' : active ? 'asc' : key === 'name' ? 'asc' : 'desc';
            sort = key;
            void show('first');
          },
        },
        label,
        h('span', { 'aria-hidden': 'true' }, active ? (order === 'asc' ? ' ▲' : ' ▼') : ''),
      );
      return h('th', { scope: 'col', 'aria-sort': active ? (order === 'asc' ? 'ascending' : 'descending') : 'none' }, button);
    };

    async function show(move: 'first' | 'next' | 'previous' | 'same'): Promise<void> {
      results.setAttribute('aria-busy', 'true');
      try {
        const page = await pager.load(move);
        if (!current(gen)) return;
        bulk.disabled = selected.size === 0;
        const rows = page.tags.map((t) => {
          const box = h('input', { type: 'checkbox', 'aria-label': `Select tag ${t.tag}`, disabled: t.immutable, checked: selected.has(t.tag) });
          box.addEventListener('change', () => {
            if (box.checked) selected.add(t.tag);
            else selected.delete(t.tag);
            bulk.disabled = selected.size === 0;
          });
          return h(
            'tr',
            {},
            mayDelete ? h('td', {}, box) : null,
            h(
              'th',
              { scope: 'row' },
              h('a', { href: link('/image', { name, ref: t.tag }) }, t.tag),
              t.immutable ? h('span', { class: 'badge', title: 'An immutable-tag rule protects this tag' }, 'immutable') : null,
            ),
            h('td', {}, h('a', { href: link('/image', { name, ref: t.digest }), class: 'mono', title: t.digest }, shortDigest(t.digest))),
            h('td', {}, kindOf(t)),
            h('td', { class: 'num' }, bytes(t.sizeBytes)),
            h('td', {}, when(t.pushedAt)),
            h('td', { class: 'num' }, t.pulls),
            h('td', {}, when(t.lastPulledAt)),
            mayDelete
              ? h(
                  'td',
                  {},
                  h(
                    'button',
                    {
                      type: 'button',
                      class: 'danger small',
                      disabled: t.immutable,
                      'aria-label': `Delete tag ${t.tag}`,
                      onclick: () => void deleteTags([t.tag]),
                    },
                    'Delete',
                  ),
                )
              : null,
          );
        });
        fill(
          results,
          rows.length === 0
            ? h('p', {}, filter.value.trim() === '' ? 'This repository has no tags.' : `No tag contains “${filter.value.trim()}”.`)
            : h(
                'div',
                { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': 'Tags' },
                h(
                  'table',
                  { id: 'tags' },
                  h('caption', { class: 'visually-hidden' }, `Tags of ${name}`),
                  h(
                    'thead',
                    {},
                    h(
                      'tr',
                      {},
                      mayDelete ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Select')) : null,
                      ...COLUMNS.map(([label, key]) => header(label, key)),
                      mayDelete ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')) : null,
                    ),
                  ),
                  h('tbody', {}, ...rows),
                ),
              ),
          pager.controls(show, 'tags'),
        );
        if (refocus !== undefined) (results.querySelector(`button[data-sort="${refocus}"]`) as HTMLElement | null)?.focus();
        refocus = undefined;
      } catch (err) {
        if (current(gen)) fill(results, errorBox(err));
      } finally {
        results.setAttribute('aria-busy', 'false');
      }
    }
    filter.addEventListener(
      'input',
      debounce(() => void show('first'), 250),
    );
    size.addEventListener('change', () => void show('first'));
    await show('first');
  };
}
