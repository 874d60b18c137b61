// HEAD request rates with ApacheBench: Debian's wrk 4.1.0 never completes a HEAD whose response carries
// Content-Length (its parser waits for a body that does not come), so HEAD rows use ab, also C, with
// keep-alive. ab runs on one thread, so it is a weaker generator than wrk's two; the server's CPU ms per
// request, read from /proc, is unaffected.
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { WrkResult, WrkSpec } from './wrk.js';

const run = promisify(execFile);
export const AB_BINARY = '/usr/bin/ab';

function field(stdout: string, label: string): number {
  const match = new RegExp(`^${label}:\\s+([\\d.]+)`, 'm').exec(stdout);
  return match ? Number(match[1]) : 0;
}

export async function runAb(spec: WrkSpec, scratch: string): Promise<WrkResult> {
  if (spec.body !== undefined || spec.uniquePathPrefix !== undefined || (spec.method ?? 'GET') !== 'HEAD')
    throw new Error('runAb only runs body-less HEAD requests');
  const csv = join(scratch, `ab-${process.pid}-${Date.now()}.csv`);
  const headers = Object.entries(spec.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);
  const args = [
    '-q',
    '-k',
    '-i',
    '-r',
    '-c',
    String(spec.connections),
    '-t',
    String(spec.durationSeconds),
    '-n',
    '100000000',
    '-s',
    String(spec.timeoutSeconds ?? 10),
    '-e',
    csv,
    ...headers,
    spec.url,
  ];
  const { stdout } = await run(AB_BINARY, args, { maxBuffer: 1 << 20, timeout: (spec.durationSeconds + 60) * 1000 });
  const percentiles = new Map<number, number>();
  for (const line of (await readFile(csv, 'utf8')).split('\n').slice(1)) {
    const [p, ms] = line.split(',').map(Number);
    if (p !== undefined && ms !== undefined && !Number.isNaN(p)) percentiles.set(p, ms);
  }
  await rm(csv, { force: true });
  const requests = field(stdout, 'Complete requests');
  const durationSeconds = field(stdout, 'Time taken for tests');
  const bytes = field(stdout, 'Total transferred');
  return {
    requests,
    durationSeconds,
    bytes,
    errors: field(stdout, 'Failed requests') + field(stdout, 'Non-2xx responses'),
    requestsPerSecond: requests / durationSeconds,
    bytesPerSecond: bytes / durationSeconds,
    p50Ms: percentiles.get(50) ?? 0,
    p99Ms: percentiles.get(99) ?? 0,
    maxMs: percentiles.get(100) ?? 0,
  };
}
