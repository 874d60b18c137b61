import { api, repoPath } from '../api.js';
import { dailyChart, type DailyCount } from '../chart.js';
import { confirmAction } from '../confirm.js';
import { announce, bytes, definitions, h, row, shortDigest, table, when } from '../dom.js';
import { registryInfo } from '../info.js';
import { current, errorBox, generationNow, go, link, type Page } from '../router.js';
import type { Session } from '../session.js';

interface Descriptor {
  digest: string;
  size: number;
  mediaType: string;
}

interface ManifestView {
  digest: string;
  mediaType: string;
  size: number;
  artifactType?: string;
  subject?: { digest: string };
  tags: string[];
  config?: Descriptor;
  layers?: Descriptor[];
  totalSize: number;
  history?: Array<{ created?: string; createdBy?: string; emptyLayer?: boolean; comment?: string }>;
  platform?: { os?: string; architecture?: string; variant?: string };
  children?: Array<Descriptor & { platform?: { os?: string; architecture?: string; variant?: string } }>;
  referrers?: Array<{ digest: string; artifactType?: string; mediaType: string; size: number }>;
}

const IMAGE_CONFIGS = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

function platformText(p: { os?: string; architecture?: string; variant?: string } | undefined): string {
  if (!p || !p.os) return 'unknown';
  return `${p.os}/${p.architecture ?? '?'}${p.variant ? `/${p.variant}` : ''}`;
}

/** A `docker pull` command with a button that copies it (the clipboard, or a selection to copy by hand). */
function pullCommand(label: string, command: string): HTMLElement {
  const id = `cmd-${Math.random().toString(36).slice(2)}`;
  const field = h('input', { id, class: 'mono command', readonly: true, value: command });
  const copy = h('button', { type: 'button', 'aria-label': `Copy: ${command}` }, 'Copy');
  copy.addEventListener('click', () => {
    const done = () => announce(`Copied: ${command}`);
    if (navigator.clipboard) {
      navigator.clipboard.writeText(command).then(done, () => {
        field.select();
        announce('Press Ctrl+C (⌘C) to copy the selected command');
      });
    } else {
      field.select();
      announce('Press Ctrl+C (⌘C) to copy the selected command');
    }
  });
  return h('div', { class: 'pull' }, h('label', { for: id }, label), h('div', { class: 'copy-row' }, field, copy));
}

/** One manifest: pull commands, platforms of an index, layers, history, referrers, delete. */
export function imagePage(session: Session): Page {
  return async (view, params) => {
    const gen = generationNow();
    const name = params.get('name') ?? '';
    const ref = params.get('ref') ?? '';
    const scopes = [`repository:${name}:pull,delete`];
    const m = await api<ManifestView>(repoPath(name, `/manifests/${encodeURIComponent(ref)}`), { scopes });
    if (!current(gen)) return;
    const info = await registryInfo();
    const isDigest = ref.includes(':');
    // Images answer an empty list; only an index has children.
    const children = m.children && m.children.length > 0 ? m.children : undefined;
    // The spec gives an image its config's media type as artifact type: only a real artifact's is worth showing.
    const artifactType = m.artifactType && !IMAGE_CONFIGS.has(m.artifactType) ? m.artifactType : undefined;
    const title = isDigest ? `${name}@${shortDigest(ref)}` : `${name}:${ref}`;
    view.append(
      h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Repositories'), ' / ', h('a', { href: link('/repo', { name }) }, name), ' /'),
      h('h1', {}, title),
      definitions([
        ['Digest', h('span', { class: 'mono break' }, m.digest)],
        ['Media type', m.mediaType],
        ...(artifactType ? ([['Artifact type', artifactType]] as Array<[string, string]>) : []),
        ['Platform', children ? `index of ${children.length} platforms` : platformText(m.platform)],
        ['Size', bytes(m.totalSize)],
        ['Tags', m.tags.length ? m.tags.join(', ') : 'untagged'],
        ...(m.subject
          ? ([['Refers to', h('a', { href: link('/image', { name, ref: m.subject.digest }), class: 'mono' }, shortDigest(m.subject.digest))]] as Array<
              [string, Node]
            >)
          : []),
      ]),
    );

    const pulls = h('section', { 'aria-labelledby': 'pull-title' }, h('h2', { id: 'pull-title' }, 'Pull'));
    const tagsToShow = isDigest ? m.tags.slice(0, 3) : [ref];
    for (const tag of tagsToShow) pulls.append(pullCommand(`By tag ${tag}`, `docker pull ${info.host}/${name}:${tag}`));
    pulls.append(pullCommand('By digest (never changes)', `docker pull ${info.host}/${name}@${m.digest}`));
    view.append(pulls);
    if (!isDigest) {
      const chartBox = h('section', { 'aria-label': 'Pulls of this tag per day' });
      view.append(chartBox);
      api<{ daily: DailyCount[] }>(`/api/v1/pulls?${new URLSearchParams({ repository: name, tag: ref, days: '30' }).toString()}`, { scopes })
        .then((report) => current(gen) && chartBox.append(dailyChart(`Pulls of ${ref} per day`, report.daily)))
        .catch((err: unknown) => current(gen) && chartBox.append(errorBox(err)));
    }

    if (children) {
      const rows = children.map((c) =>
        row(
          h('a', { href: link('/image', { name, ref: c.digest }) }, platformText(c.platform)),
          h('span', { class: 'mono', title: c.digest }, shortDigest(c.digest)),
          bytes(c.size),
          c.mediaType,
        ),
      );
      view.append(
        h(
          'section',
          {},
          h('h2', {}, 'Platforms'),
          table('Platforms in this index', ['Platform', 'Digest', 'Size', 'Media type'], rows, { captionHidden: true }),
        ),
      );
    }
    if (m.layers) {
      const rows = m.layers.map((l, i) => row(i + 1, h('span', { class: 'mono', title: l.digest }, shortDigest(l.digest)), bytes(l.size), l.mediaType));
      view.append(h('section', {}, h('h2', {}, 'Layers'), table('Layers, bottom first', ['#', 'Digest', 'Size', 'Media type'], rows, { captionHidden: true })));
    }
    if (m.history && m.history.length > 0) {
      const rows = m.history.map((step) =>
        row(when(step.created ?? null), h('code', { class: 'history' }, step.createdBy ?? ''), step.emptyLayer ? 'no layer' : 'layer', step.comment ?? ''),
      );
      view.append(
        h(
          'section',
          {},
          h('h2', {}, 'History'),
          table('How the image was built, first step first', ['Created', 'Command', 'Layer', 'Comment'], rows, { captionHidden: true }),
        ),
      );
    }
    const referrers = m.referrers ?? [];
    view.append(
      h(
        'section',
        {},
        h('h2', {}, 'Referrers'),
        referrers.length === 0
          ? h('p', { class: 'muted' }, 'No signatures, SBOMs or other artifacts refer to this manifest.')
          : table(
              'Artifacts that refer to this manifest',
              ['Artifact type', 'Digest', 'Size'],
              referrers.map((r) =>
                row(
                  r.artifactType ?? r.mediaType,
                  h('a', { href: link('/image', { name, ref: r.digest }), class: 'mono' }, shortDigest(r.digest)),
                  bytes(r.size),
                ),
              ),
              { captionHidden: true },
            ),
      ),
    );

    if (info.deleteEnabled && !info.readOnly && session.allowed('repository', name, 'delete')) {
      const del = h('button', { type: 'button', class: 'danger' }, 'Delete this manifest');
      del.addEventListener('click', () => {
        const tags = m.tags.length ? ` and its tags ${m.tags.join(', ')}` : '';
        void confirmAction(
          'Delete this manifest?',
          `Deletes ${shortDigest(m.digest)}${tags} from ${name}. Anyone pulling it by digest gets “not found”.`,
          'Delete manifest',
        ).then(async (ok) => {
          if (!ok) return;
          try {
            await api(repoPath(name, `/manifests/${encodeURIComponent(m.digest)}`), { method: 'DELETE', scopes });
            announce(`Deleted ${shortDigest(m.digest)}`);
            go('/repo', { name });
          } catch (err) {
            announce(`Not deleted: ${err instanceof Error ? err.message : String(err)}`);
          }
        });
      });
      view.append(h('section', { class: 'danger-zone' }, h('h2', {}, 'Delete'), del));
    }
  };
}
