// Every page is built from these: text goes in as text nodes, never as HTML, so names, tags and image
// history (which anyone who can push controls) cannot inject markup.

export type Child = Node | string | number | null | undefined | false;
type Props = Record<string, string | number | boolean | EventListener | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.replace(/^on/, '').toLowerCase(), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

export function svg(tag: string, attrs: Record<string, string | number>, ...children: Child[]): SVGElement {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  append(el, children);
  return el;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

/** A time as "3 h ago" with the exact time in a <time> element's title and datetime. */
export function when(iso: string | null | undefined, now = Date.now()): Node {
  if (!iso) return document.createTextNode('never');
  const at = Date.parse(iso);
  const s = Math.round((now - at) / 1000);
  let text: string;
  if (Number.isNaN(at)) text = iso;
  else if (s < 60) text = 'just now';
  else if (s < 3600) text = `${Math.floor(s / 60)} min ago`;
  else if (s < 86400) text = `${Math.floor(s / 3600)} h ago`;
  else if (s < 86400 * 60) text = `${Math.floor(s / 86400)} d ago`;
  else text = iso.slice(0, 10);
  return h('time', { datetime: iso, title: iso }, text);
}

export function shortDigest(digest: string): string {
  const [algo, hex] = digest.split(':');
  return hex === undefined ? digest : `${algo}:${hex.slice(0, 12)}`;
}

/** A table inside a scrolling wrapper, so a wide table scrolls on a phone instead of the whole page. */
export function table(caption: string, head: Array<string | Node>, rows: Node[], opts: { captionHidden?: boolean } = {}): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': caption },
    h(
      'table',
      {},
      h('caption', opts.captionHidden ? { class: 'visually-hidden' } : {}, caption),
      h('thead', {}, h('tr', {}, ...head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, ...rows),
    ),
  );
}

export function row(...cells: Child[]): HTMLTableRowElement {
  return h('tr', {}, ...cells.map((c) => h('td', {}, c)));
}

export function definitions(pairs: Array<[string, Child]>): HTMLElement {
  const dl = h('dl', { class: 'facts' });
  for (const [k, v] of pairs) append(dl, [h('dt', {}, k), h('dd', {}, v)]);
  return dl;
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;

/** Says something in the page's live region (screen readers read it out). */
export function announce(text: string): void {
  const el = document.getElementById('status');
  if (!el) return;
  el.textContent = text;
  el.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('shown'), 4000);
}

export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): (...args: A) => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Replaces an element's children, skipping the empty ones. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}
