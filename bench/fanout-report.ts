// The fan-out-on-S3 row as one Markdown table: a line per setup with wall time, per-client latency,
// server CPU and the S3 GETs each stored object cost during the pull.
import type { FanoutRow } from './fanout.js';

function size(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${bytes} B`;
}

export function fanoutTable(rows: FanoutRow[]): string {
  const lines: string[] = [];
  for (const row of rows) {
    lines.push(`### ${row.title} (${row.key})${row.ok ? '' : ' — FAILED'}`, '');
    if (row.error) lines.push(`error: ${row.error}`, '');
    lines.push(
      '| Setup | ok | wall s | client p50 / p99 s | server CPU s | S3 GETs per object during the pull | S3 requests |',
      '|---|---|---:|---|---:|---|---|',
    );
    for (const c of row.cases) {
      if (c.error !== undefined || c.wallSeconds === undefined) {
        lines.push(`| ${c.label} | no | – | – | – | ${(c.error ?? 'no figures').replace(/\s+/g, ' ').slice(0, 300)} | – |`);
        continue;
      }
      const gets = c.blobs === undefined ? 'n/a (filesystem)' : c.blobs.map((b) => `${b.what} (${size(b.bytes)}): ${b.s3Gets}`).join('; ');
      const requests = Object.entries(c.s3Requests ?? {})
        .map(([m, n]) => `${m} ${n}`)
        .join(', ');
      lines.push(
        `| ${c.label} | ${c.ok ? 'yes' : `NO: ${c.problems.slice(0, 2).join('; ')}`} | ${c.wallSeconds.toFixed(1)} | ` +
          `${((c.p50Ms ?? 0) / 1000).toFixed(2)} / ${((c.p99Ms ?? 0) / 1000).toFixed(2)} | ${(c.serverCpuSeconds ?? 0).toFixed(1)} | ${gets} | ${requests} |`,
      );
    }
    lines.push('');
  }
  return lines.join('\n');
}
