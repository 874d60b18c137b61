import { h, svg } from './dom.js';

export interface DailyCount {
  date: string;
  count: number;
}

/**
 * Pulls per day as bars. The picture is for the eye; the same numbers are in a table under a
 * disclosure for screen readers and for reading exact values.
 */
export function dailyChart(title: string, daily: DailyCount[]): HTMLElement {
  const width = 600;
  const height = 120;
  const max = Math.max(1, ...daily.map((d) => d.count));
  const bar = width / Math.max(1, daily.length);
  const total = daily.reduce((s, d) => s + d.count, 0);
  const bars = daily.map((d, i) => {
    const hgt = Math.round((d.count / max) * (height - 20));
    return svg(
      'rect',
      { x: Math.round(i * bar + 1), y: height - hgt, width: Math.max(1, Math.round(bar - 2)), height: hgt, class: 'bar' },
      svg('title', {}, `${d.date}: ${d.count}`),
    );
  });
  const picture = svg(
    'svg',
    {
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': `${title}: ${total} in ${daily.length} days, at most ${max} a day`,
      class: 'chart',
      preserveAspectRatio: 'none',
    },
    svg('line', { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: 'axis' }),
    ...bars,
  );
  const first = daily[0]?.date ?? '';
  const last = daily[daily.length - 1]?.date ?? '';
  return h(
    'figure',
    { class: 'chart-box' },
    h('figcaption', {}, `${title}: ${total} from ${first} to ${last}`),
    picture,
    h(
      'details',
      {},
      h('summary', {}, 'Daily numbers'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          {},
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day'), h('th', { scope: 'col' }, 'Pulls'))),
          h('tbody', {}, ...daily.map((d) => h('tr', {}, h('td', {}, d.date), h('td', { class: 'num' }, d.count)))),
        ),
      ),
    ),
  );
}
