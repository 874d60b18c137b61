// Turns measurements into the side-by-side table (Berth on the filesystem against distribution, with
// Berth on S3 alongside) and checks the issue's bar on the filesystem pair.
import type { CeilingRatio } from './ceiling-ratio.js';
import type { Ceilings } from './ceilings.js';
import type { TargetId } from './targets.js';
import type { Measurement, Workload } from './workloads.js';

export interface TargetResult {
  /** The run with the median value. */
  median?: Measurement;
  runs: Measurement[];
  error?: string;
}

export interface Row {
  key: string;
  title: string;
  group: Workload['group'];
  unit: Workload['unit'];
  blobBytes?: number;
  results: Partial<Record<TargetId, TargetResult>>;
  /** Berth fs / distribution, on the value. */
  ratio?: number;
  /** Berth fs / the machine's ceiling for this kind of work. */
  ceiling?: CeilingRatio;
  bar?: { pass: boolean; rule: string };
}

const MiB = 1024 * 1024;

export function medianRun(runs: Measurement[]): Measurement | undefined {
  if (runs.length === 0) return undefined;
  const sorted = [...runs].sort((a, b) => a.value - b.value);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** Server CPU: seconds per GB moved, or milliseconds per request. */
export function serverCpu(row: Pick<Row, 'group'>, m: Measurement): number | undefined {
  if (row.group === 'requests' || row.group === 'mixed') return m.requests ? (m.serverCpuSeconds * 1000) / m.requests : undefined;
  return m.bytes ? m.serverCpuSeconds / (m.bytes / 1e9) : undefined;
}

/** The issue's bar, judged on Berth fs against distribution from the same run. */
export function judge(row: Row, largestPushSizes: number[]): Row['bar'] {
  const fs = row.results['berth-fs']?.median;
  const dist = row.results.distribution?.median;
  if (row.group === 'big') {
    if (!fs?.peakRssBytes) return undefined;
    return { pass: fs.peakRssBytes < 200 * MiB, rule: 'Berth RSS < 200 MiB' };
  }
  if (row.group === 'mixed') {
    // Every Berth storage counts here: the S3 path has buffers of its own.
    const peaks = (['berth-fs', 'berth-s3'] as TargetId[]).map((id) => row.results[id]?.median?.peakRssBytes).filter((v): v is number => v !== undefined);
    if (peaks.length === 0) return undefined;
    return { pass: Math.max(...peaks) <= 200 * MiB, rule: 'Berth RSS ≤ 200 MiB' };
  }
  if (!fs || !dist || row.ratio === undefined) return undefined;
  if (row.group === 'push' && row.blobBytes !== undefined && largestPushSizes.includes(row.blobBytes)) {
    // Where the disk is the limit, 80 % of its durable write speed is the bar (issue 18, item 2).
    const nearDisk = row.ceiling?.against === 'write+fsync' && row.ceiling.ratio >= 0.8;
    return { pass: row.ratio >= 1.3 || nearDisk, rule: '≥ 1.3× or ≥ 80 % of write+fsync' };
  }
  if (row.group === 'pull') {
    const a = serverCpu(row, fs);
    const b = serverCpu(row, dist);
    return { pass: row.ratio >= 1.0 && a !== undefined && b !== undefined && a <= b, rule: '≥ 1.0× and CPU/GB ≤ dist' };
  }
  if (row.group === 'requests') {
    return { pass: row.ratio >= 5 && (fs.p99Ms ?? Infinity) <= (dist.p99Ms ?? 0), rule: '≥ 5× and p99 ≤ dist' };
  }
  return undefined;
}

function num(value: number, digits = 0): string {
  if (value >= 10_000) return `${(value / 1000).toFixed(1)}k`;
  return value.toFixed(digits);
}

function cell(row: Row, id: TargetId): string {
  const r = row.results[id];
  if (!r) return '–';
  if (!r.median) return `failed${r.error ? ` (${r.error.slice(0, 80).replace(/[|\n]/g, ' ')})` : ''}`;
  const m = r.median;
  let text = `${num(m.value)} ${row.unit}`;
  if (m.errors) text += ` (${m.errors} errors)`;
  return text;
}

function latency(row: Row, ids: TargetId[]): string {
  if (row.group !== 'requests' && row.group !== 'fanout' && row.group !== 'mixed') return '';
  return ids
    .map((id) => {
      const m = row.results[id]?.median;
      return m?.p50Ms === undefined ? '–' : `${num(m.p50Ms, m.p50Ms < 10 ? 2 : 0)}/${num(m.p99Ms ?? 0, (m.p99Ms ?? 0) < 10 ? 2 : 0)}`;
    })
    .join(' · ');
}

function cpu(row: Row, ids: TargetId[]): string {
  return ids
    .map((id) => {
      const m = row.results[id]?.median;
      const v = m ? serverCpu(row, m) : undefined;
      return v === undefined ? '–' : v.toFixed(row.group === 'requests' || row.group === 'mixed' ? 3 : 2);
    })
    .join(' · ');
}

function clientCpu(row: Row, ids: TargetId[]): string {
  return ids
    .map((id) => {
      const m = row.results[id]?.median;
      return m ? `${Math.round((m.clientCpuSeconds / m.wallSeconds) * 100)}` : '–';
    })
    .join(' · ');
}

function rss(row: Row, ids: TargetId[]): string {
  if (row.group !== 'big' && row.group !== 'mixed') return '';
  return ids
    .map((id) => {
      const m = row.results[id]?.median;
      if (!m?.peakRssBytes) return '–';
      // Anonymous (heap, buffers) and file-backed (mapped files: lmdb's map) shares, where sampled.
      const parts =
        m.peakRssAnonBytes === undefined ? '' : ` (anon ${Math.round(m.peakRssAnonBytes / MiB)}, file ${Math.round((m.peakRssFileBytes ?? 0) / MiB)})`;
      return `${Math.round(m.peakRssBytes / MiB)}${parts}`;
    })
    .join(' · ');
}

function ceilingCell(row: Row): string {
  return row.ceiling ? `${Math.round(row.ceiling.ratio * 100)} % of ${row.ceiling.against}` : '–';
}

export function markdownTable(rows: Row[], targets: TargetId[]): string {
  const order = (['berth-fs', 'distribution', 'berth-s3'] as TargetId[]).filter((t) => targets.includes(t));
  const names: Record<TargetId, string> = { 'berth-fs': 'fs', distribution: 'dist', 'berth-s3': 's3' };
  const tag = order.map((t) => names[t]).join(' · ');
  const lines = [
    `| Workload | Berth fs | distribution | Berth/dist | Berth fs/ceiling | Berth S3 | p50/p99 ms (${tag}) | server CPU s/GB or ms/req (${tag}) | client CPU % (${tag}) | peak RSS MiB (${tag}) | Bar |`,
    '|---|---:|---:|---:|---:|---:|---|---|---|---|---|',
  ];
  for (const row of rows) {
    const bar = row.bar ? `${row.bar.pass ? 'met' : '**missed**'} (${row.bar.rule})` : '';
    lines.push(
      `| ${row.title} | ${cell(row, 'berth-fs')} | ${cell(row, 'distribution')} | ${row.ratio === undefined ? '–' : `${row.ratio.toFixed(2)}×`} | ${ceilingCell(row)} | ${cell(row, 'berth-s3')} | ${latency(row, order)} | ${cpu(row, order)} | ${clientCpu(row, order)} | ${rss(row, order)} | ${bar} |`,
    );
  }
  return lines.join('\n');
}

export function ceilingsTable(c: Ceilings): string {
  return [
    '| Machine ceiling | Value |',
    '|---|---:|',
    `| SHA-256 (Node crypto, one core) | ${c.sha256MBps.toFixed(0)} MB/s |`,
    `| Sequential write + fsync (8 MiB writes, one file) | ${c.durableWriteMBps.toFixed(0)} MB/s |`,
    `| Trivial Node HTTP server, wrk c=64 | ${num(c.trivialHttp.requestsPerSecond)} req/s, p50 ${c.trivialHttp.p50Ms.toFixed(2)} ms, p99 ${c.trivialHttp.p99Ms.toFixed(2)} ms, ${c.trivialHttp.serverCpuMsPerRequest.toFixed(3)} CPU ms/req |`,
    `| Trivial Node server sending a 64 MiB buffer, wrk c=8 | ${c.trivialPull.MBps.toFixed(0)} MB/s, ${c.trivialPull.serverCpuSecondsPerGB.toFixed(2)} CPU s/GB |`,
  ].join('\n');
}
