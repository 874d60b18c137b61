import { h } from './dom.js';
import { ApiError } from './api.js';

/** A page renders into the view; params come from the hash's query (#/repo?name=team/app). */
export type Page = (view: HTMLElement, params: URLSearchParams) => Promise<void>;

const routes = new Map<string, { title: string; page: Page }>();
let generation = 0;

export function route(path: string, title: string, page: Page): void {
  routes.set(path, { title, page });
}

export function link(path: string, params: Record<string, string> = {}): string {
  const q = new URLSearchParams(params).toString();
  return `#${path}${q ? `?${q}` : ''}`;
}

export function go(path: string, params: Record<string, string> = {}): void {
  location.hash = link(path, params);
}

/** True while the page rendered in this generation is still the one shown (a slow answer must not paint over a newer page). */
export function current(gen: number): boolean {
  return gen === generation;
}

export function generationNow(): number {
  return generation;
}

export function errorBox(err: unknown): HTMLElement {
  const message = err instanceof ApiError ? err.message : err instanceof Error ? err.message : String(err);
  const code = err instanceof ApiError ? ` (${err.code})` : '';
  return h('p', { class: 'error', role: 'alert' }, `${message}${code}`);
}

async function render(): Promise<void> {
  const hash = location.hash || '#/';
  // In-page anchors such as the skip link are not routes.
  if (!hash.startsWith('#/')) return;
  const [path = '/', query = ''] = hash.slice(1).split('?', 2);
  const entry = routes.get(path) ?? routes.get('/404');
  if (!entry) return;
  const gen = ++generation;
  const main = document.getElementById('main') as HTMLElement;
  const view = h('div', { class: 'page' });
  main.replaceChildren(view);
  document.title = `${entry.title} · Berth`;
  for (const a of document.querySelectorAll<HTMLAnchorElement>('#nav a')) {
    if (a.getAttribute('href') === `#${path}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  try {
    await entry.page(view, new URLSearchParams(query));
  } catch (err) {
    if (current(gen)) view.append(errorBox(err));
  }
  if (current(gen)) view.querySelector('h1')?.setAttribute('tabindex', '-1');
}

export function startRouter(): void {
  window.addEventListener('hashchange', () => {
    void render().then(() => (document.querySelector('#main h1') as HTMLElement | null)?.focus());
  });
  void render();
}
