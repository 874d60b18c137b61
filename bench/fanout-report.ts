// The fan-out rows as Markdown tables: a line per setup with wall time, per-client latency, server CPU
// and the S3 GETs each stored object cost during the pull; the cold row adds the upstream's requests.
import type { FanoutCase, FanoutRow } from './fanout.js';

function size(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${bytes} B`;
}

function counts(record: Record<string, number> | undefined): string {
  return Object.entries(record ?? {})
    .map(([m, n]) => `${m} ${n}`)
    .join(', ');
}

function figures(c: FanoutCase): string {
  return (
    `${c.ok ? 'yes' : `NO: ${c.problems.slice(0, 2).join('; ')}`} | ${(c.wallSeconds ?? 0).toFixed(1)} | ` +
    `${((c.p50Ms ?? 0) / 1000).toFixed(2)} / ${((c.p99Ms ?? 0) / 1000).toFixed(2)} | ${(c.serverCpuSeconds ?? 0).toFixed(1)}`
  );
}

/** The cold row: upstream GETs per object first (the figure the row is about), then S3 reads. */
function coldLines(row: FanoutRow): string[] {
  const lines = [
    '| Setup | ok | wall s | client p50 / p99 s | cache CPU s | upstream GETs per object during the pull | upstream requests | upstream MiB sent | upstream CPU s | S3 GETs per object | S3 requests | S3 requests by key area | S3 MiB returned by key area |',
    '|---|---|---:|---|---:|---|---|---:|---:|---|---|---|---|',
  ];
  for (const c of row.cases) {
    if (c.error !== undefined || c.wallSeconds === undefined) {
      lines.push(`| ${c.label} | no | – | – | – | ${(c.error ?? 'no figures').replace(/\s+/g, ' ').slice(0, 300)} | – | – | – | – | – | – | – |`);
      continue;
    }
    const blobs = c.blobs ?? [];
    const upstream = blobs.map((b) => `${b.what} (${size(b.bytes)}): ${b.upstreamGets ?? 0}`).join('; ');
    const s3 = blobs.some((b) => b.s3Gets !== undefined) ? blobs.map((b) => `${b.what}: ${b.s3Gets ?? 0}`).join('; ') : 'n/a (filesystem)';
    lines.push(
      `| ${c.label} | ${figures(c)} | ${upstream} | ${counts(c.upstreamRequests)} | ${(c.upstreamMiB ?? 0).toFixed(1)} | ` +
        `${(c.upstreamCpuSeconds ?? 0).toFixed(1)} | ${s3} | ${counts(c.s3Requests)} | ${counts(c.s3RequestAreas)} | ${counts(c.s3MiBByArea)} |`,
    );
  }
  return lines;
}

export function fanoutTable(rows: FanoutRow[]): string {
  const lines: string[] = [];
  for (const row of rows) {
    lines.push(`### ${row.title} (${row.key})${row.ok ? '' : ' — FAILED'}`, '');
    if (row.error) lines.push(`error: ${row.error}`, '');
    if (row.cold) {
      lines.push(...coldLines(row), '');
      continue;
    }
    lines.push(
      '| Setup | ok | wall s | client p50 / p99 s | server CPU s | S3 GETs per object during the pull | S3 requests |',
      '|---|---|---:|---|---:|---|---|',
    );
    for (const c of row.cases) {
      if (c.error !== undefined || c.wallSeconds === undefined) {
        lines.push(`| ${c.label} | no | – | – | – | ${(c.error ?? 'no figures').replace(/\s+/g, ' ').slice(0, 300)} | – |`);
        continue;
      }
      const gets = c.blobs === undefined ? 'n/a (filesystem)' : c.blobs.map((b) => `${b.what} (${size(b.bytes)}): ${b.s3Gets ?? 0}`).join('; ');
      lines.push(`| ${c.label} | ${figures(c)} | ${gets} | ${counts(c.s3Requests)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
