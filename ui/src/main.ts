import { useSession } from './api.js';
import { h } from './dom.js';
import { route, startRouter } from './router.js';
import { REGISTRY_SCOPES, Session } from './session.js';
import { signInPage } from './pages/sign-in.js';
import { repositoriesPage } from './pages/repositories.js';
import { repositoryPage } from './pages/repository.js';
import { imagePage } from './pages/image.js';
import { storagePage } from './pages/storage.js';
import { activityPage } from './pages/activity.js';
import { gcPage, replicationPage, retentionPage } from './pages/operations.js';
import { overviewPage } from './pages/overview.js';

const NAV: Array<[string, string, string | undefined]> = [
  ['#/', 'Repositories', undefined],
  ['#/overview', 'Overview', undefined],
  ['#/storage', 'Storage', 'quotas'],
  ['#/activity', 'Activity', 'events'],
  ['#/gc', 'Garbage collection', 'gc'],
  ['#/retention', 'Retention', 'retention'],
  ['#/replication', 'Replication', 'replication'],
];

/** The header: links to the pages this caller's token may open, and who is signed in. */
export function renderChrome(session: Session): void {
  const nav = document.getElementById('nav') as HTMLElement;
  const items = NAV.filter(([, , resource]) => resource === undefined || session.allowed('registry', resource, '*'));
  nav.replaceChildren(h('ul', {}, ...items.map(([href, label]) => h('li', {}, h('a', { href }, label)))));
  const who = document.getElementById('who') as HTMLElement;
  if (session.mode === 'open') {
    who.replaceChildren(h('span', { class: 'muted' }, 'Authentication is off'));
  } else if (session.user !== undefined && session.signedIn) {
    who.replaceChildren(
      h('span', {}, 'Signed in as ', h('strong', {}, session.user)),
      h(
        'button',
        {
          type: 'button',
          class: 'link',
          onclick: () => {
            session.signOut();
            renderChrome(session);
            location.hash = '#/signin';
          },
        },
        'Sign out',
      ),
    );
  } else {
    who.replaceChildren(h('a', { href: '#/signin' }, 'Sign in'));
  }
}

async function start(): Promise<void> {
  const session = await Session.discover();
  useSession(session);
  // The registry-wide token tells which operator pages to offer; without one, just the public ones.
  if (session.signedIn) await session.token(REGISTRY_SCOPES).catch(() => undefined);
  renderChrome(session);
  const toggle = document.querySelector('.menu-toggle') as HTMLButtonElement;
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    document.body.classList.toggle('nav-open', open);
  });
  document.getElementById('nav')?.addEventListener('click', () => {
    toggle.setAttribute('aria-expanded', 'false');
    document.body.classList.remove('nav-open');
  });
  document.querySelector('.skip')?.addEventListener('click', (e) => {
    e.preventDefault();
    (document.getElementById('main') as HTMLElement).focus();
  });

  route(
    '/',
    'Repositories',
    repositoriesPage(() => session.signedIn),
  );
  route(
    '/signin',
    'Sign in',
    signInPage(session, () => renderChrome(session)),
  );
  route('/repo', 'Repository', repositoryPage(session));
  route('/image', 'Image', imagePage(session));
  route('/overview', 'Overview', overviewPage);
  route('/storage', 'Storage', storagePage);
  route('/activity', 'Activity', activityPage);
  route('/gc', 'Garbage collection', gcPage);
  route('/retention', 'Retention', retentionPage);
  route('/replication', 'Replication', replicationPage);
  route('/404', 'Not found', async (view) => {
    view.append(h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Back to the repositories')));
  });
  startRouter();
}

void start();
