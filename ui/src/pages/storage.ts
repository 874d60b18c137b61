import { api } from '../api.js';
import { bytes, h, table, fill } from '../dom.js';
import { Pager } from '../pager.js';
import { current, errorBox, generationNow, type Page } from '../router.js';

interface NamespaceReport {
  namespace: string;
  rule?: string;
  limitBytes?: number;
  usedBytes: number;
  digests: number;
  exclusiveBytes: number;
  sharedBytes: number;
}

/** Storage per namespace (the quota report): what each uses, against its limit where a rule sets one. */
export const storagePage: Page = async (view) => {
  const gen = generationNow();
  const results = h('div', {});
  view.append(
    h('h1', {}, 'Storage'),
    h(
      'p',
      { class: 'muted' },
      'Bytes each namespace (the first part of a repository name) holds. Exclusive bytes are freed if the namespace is deleted and garbage collection runs.',
    ),
    results,
  );
  const pager = new Pager(async (last) =>
    api<{ namespaces: NamespaceReport[]; next?: string }>(`/api/v1/quotas?${new URLSearchParams({ n: '50', ...(last ? { last } : {}) }).toString()}`),
  );
  const show = async (move: 'first' | 'next' | 'previous') => {
    try {
      const page = await pager.load(move);
      if (!current(gen)) return;
      const max = Math.max(1, ...page.namespaces.map((n) => n.limitBytes ?? n.usedBytes));
      const rows = page.namespaces.map((n) => {
        const of = n.limitBytes ?? max;
        const pct = Math.min(100, Math.round((n.usedBytes / Math.max(1, of)) * 100));
        const label = n.limitBytes ? `${bytes(n.usedBytes)} of ${bytes(n.limitBytes)} (${pct} %)` : bytes(n.usedBytes);
        return h(
          'tr',
          {},
          h('th', { scope: 'row' }, n.namespace),
          h(
            'td',
            {},
            h('meter', {
              min: 0,
              max: of,
              value: n.usedBytes,
              'aria-label': `${n.namespace}: ${label}`,
              ...(n.limitBytes ? { high: n.limitBytes * 0.9 } : {}),
            }),
            ' ',
            label,
          ),
          h('td', { class: 'num' }, bytes(n.exclusiveBytes)),
          h('td', { class: 'num' }, bytes(n.sharedBytes)),
          h('td', { class: 'num' }, n.digests),
          h('td', {}, n.rule ?? 'no limit'),
        );
      });
      fill(
        results,
        rows.length === 0
          ? h('p', {}, 'Nothing stored yet.')
          : table('Storage per namespace', ['Namespace', 'Used', 'Exclusive', 'Shared', 'Objects', 'Quota rule'], rows, { captionHidden: true }),
        pager.controls(show, 'namespaces'),
      );
    } catch (err) {
      if (current(gen)) fill(results, errorBox(err));
    }
  };
  await show('first');
};
