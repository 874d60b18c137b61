import { h } from './dom.js';

/**
 * Pages of an API list that pages by the last entry shown (`last`): going back means asking again with
 * the entry the page before ended with, so the pager keeps those.
 */
export class Pager<T extends { next?: string }> {
  private readonly starts: Array<string | undefined> = [undefined];
  private at = 0;
  private next: string | undefined;

  constructor(private readonly fetchPage: (last: string | undefined) => Promise<T>) {}

  async load(move: 'first' | 'next' | 'previous' | 'same'): Promise<T> {
    if (move === 'first') {
      this.starts.length = 1;
      this.at = 0;
    } else if (move === 'next' && this.next !== undefined) {
      this.starts[this.at + 1] = this.next;
      this.at++;
    } else if (move === 'previous' && this.at > 0) {
      this.at--;
    }
    const page = await this.fetchPage(this.starts[this.at]);
    this.next = page.next;
    return page;
  }

  /** Previous / next buttons; none when everything fits on one page. */
  controls(show: (move: 'previous' | 'next') => Promise<void>, what: string): HTMLElement | null {
    if (this.at === 0 && this.next === undefined) return null;
    return h(
      'nav',
      { class: 'pager', 'aria-label': `Pages of ${what}` },
      h('button', { type: 'button', disabled: this.at === 0, onclick: () => void show('previous') }, '← Previous'),
      h('span', {}, `Page ${this.at + 1}`),
      h('button', { type: 'button', disabled: this.next === undefined, onclick: () => void show('next') }, 'Next →'),
    );
  }
}
