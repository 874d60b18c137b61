import { api } from '../api.js';
import { h, shortDigest, table, when, fill } from '../dom.js';
import { Pager } from '../pager.js';
import { current, errorBox, generationNow, link, type Page } from '../router.js';

interface RecordView {
  position: string;
  time: string;
  actions: string[];
  record: {
    kind: string;
    repository?: string;
    digest?: string;
    tag?: string;
    tags?: string[];
    origin?: { actor?: string; address?: string };
  };
}

/** The tags or digest a change is about, linked to the image page while it may still be there. */
function what(r: RecordView['record']): Node | string {
  const tags = r.tags?.length ? r.tags.join(', ') : r.tag;
  const label = tags ? tags : r.digest ? shortDigest(r.digest) : '';
  if (r.repository && r.digest && r.kind === 'manifest_put') return h('a', { href: link('/image', { name: r.repository, ref: r.digest }) }, label);
  return label;
}

const BLOB_KINDS = new Set(['blob_linked', 'blob_unlinked']);

/** The activity feed: the registry's change log (pushes, tag moves, deletes), newest first. */
export const activityPage: Page = async (view) => {
  const gen = generationNow();
  const results = h('div', {});
  // Blob uploads are most of the log and rarely what a person looks for.
  const blobs = h('input', { id: 'show-blobs', type: 'checkbox' });
  view.append(
    h('h1', {}, 'Activity'),
    h('p', { class: 'muted' }, 'What changed in the registry, newest first, from the event log.'),
    h('div', { class: 'toolbar' }, h('div', { class: 'check' }, blobs, h('label', { for: 'show-blobs' }, 'Show blob uploads'))),
    results,
  );
  const pager = new Pager(async (last) => {
    const body = await api<{ records: RecordView[]; next?: string }>(
      `/api/v1/events?${new URLSearchParams({ n: '50', ...(last ? { last } : {}) }).toString()}`,
    );
    return body;
  });
  const show = async (move: 'first' | 'next' | 'previous' | 'same') => {
    try {
      const page = await pager.load(move);
      if (!current(gen)) return;
      const rows = page.records
        .filter((rec) => blobs.checked || !BLOB_KINDS.has(rec.record.kind))
        .map((rec) => {
          const r = rec.record;
          return h(
            'tr',
            {},
            h('td', {}, when(rec.time)),
            h('td', {}, rec.actions.join(', ') || r.kind),
            h('td', {}, r.repository ? h('a', { href: link('/repo', { name: r.repository }) }, r.repository) : '—'),
            h('td', { class: 'mono' }, what(r)),
            h('td', {}, r.origin?.actor ?? '—'),
          );
        });
      fill(
        results,
        rows.length === 0
          ? h('p', {}, 'Nothing has happened yet.')
          : table('Recent changes', ['When', 'What', 'Repository', 'Tags or digest', 'Who'], rows, { captionHidden: true }),
        pager.controls(show, 'activity'),
      );
    } catch (err) {
      if (current(gen)) fill(results, errorBox(err));
    }
  };
  blobs.addEventListener('change', () => void show('same'));
  await show('first');
};
