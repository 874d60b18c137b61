// The events rows as two Markdown tables per store: push rate and latency of every case against
// events off, and how far behind each endpoint was left when the pushes ended.
import type { EventsCase, EventsRow } from './events.js';

function ms(value: number): string {
  return value < 10 ? value.toFixed(1) : value.toFixed(0);
}

function ratio(value: number, base: number | undefined): string {
  return base === undefined || base === 0 ? '–' : `${(value / base).toFixed(2)}×`;
}

function pushTable(cases: EventsCase[]): string[] {
  const off = cases.find((c) => c.id === 'off');
  const lines = [
    '| Setup | c | images/s (vs off) | manifest PUT p50 / p99 ms (p99 vs off) | whole push p50 / p99 ms (p99 vs off) | server CPU ms/image |',
    '|---|---:|---:|---|---|---:|',
  ];
  for (const c of cases) {
    for (const p of c.phases) {
      const base = off?.phases.find((b) => b.concurrency === p.concurrency);
      lines.push(
        `| ${c.label} | ${p.concurrency} | ${p.imagesPerSecond.toFixed(0)} (${ratio(p.imagesPerSecond, base?.imagesPerSecond)}) | ` +
          `${ms(p.manifestPut.p50Ms)} / ${ms(p.manifestPut.p99Ms)} (${ratio(p.manifestPut.p99Ms, base?.manifestPut.p99Ms)}) | ` +
          `${ms(p.push.p50Ms)} / ${ms(p.push.p99Ms)} (${ratio(p.push.p99Ms, base?.push.p99Ms)}) | ${p.serverCpuMsPerImage.toFixed(2)} |`,
      );
    }
  }
  return lines;
}

function endTable(cases: EventsCase[]): string[] {
  const lines = [
    '| Setup | records logged | events answered by the endpoint | delivered (store) | behind at the end | lag s | failed attempts | dead letters | dropped | gauge queued / lag s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const c of cases) {
    const e = c.end;
    const ep = e?.endpoint;
    const dash = '–';
    const gauge = e?.gauge ? `${e.gauge.queued} / ${e.gauge.lagSeconds.toFixed(0)}` : dash;
    const behind = ep ? `${ep.behind}${e?.drainedSeconds !== undefined ? ` (0 after ${e.drainedSeconds.toFixed(1)} s)` : ''}` : dash;
    lines.push(
      `| ${c.label} | ${e?.logged ?? dash} | ${e?.received ?? dash} | ${ep?.delivered ?? dash} | ${behind} | ${ep ? ep.lagSeconds : dash} | ` +
        `${ep?.failedAttempts ?? dash} | ${ep?.deadLetters ?? dash} | ${ep?.dropped ?? dash} | ${gauge} |`,
    );
  }
  return lines;
}

export function eventsTable(rows: EventsRow[]): string {
  const out: string[] = [];
  for (const row of rows) {
    out.push(`### ${row.title}`, '');
    if (row.error !== undefined) {
      out.push(`failed: ${row.error}`, '');
      continue;
    }
    out.push(...pushTable(row.cases), '', ...endTable(row.cases), '');
    out.push(
      row.ok
        ? 'Checks passed: events queued for the slow and down endpoints, none dropped; the fast endpoint caught up.'
        : `**Checks failed**: ${row.problems.join('; ')}`,
    );
    const down = row.cases.find((c) => c.id === 'down')?.end?.endpoint?.lastError;
    if (down !== undefined) out.push('', `Down endpoint's last error: ${down}`);
    out.push('');
  }
  return out.join('\n');
}
