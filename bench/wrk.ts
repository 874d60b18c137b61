// Request-rate and pull-rate runs with wrk (C, event-driven): far cheaper per request than any Node
// client, so the server rather than the load generator is what saturates. A generated Lua script sets
// method, headers and body, and reports wrk's own summary as one JSON line.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const WRK_BINARY = '/usr/bin/wrk';

export interface WrkSpec {
  url: string;
  method?: 'GET' | 'HEAD' | 'PUT';
  headers?: Record<string, string>;
  body?: string;
  /** Each request goes to `${pathPrefix}<thread>-<n>` (e.g. a fresh tag per manifest PUT). */
  uniquePathPrefix?: string;
  connections: number;
  durationSeconds: number;
  timeoutSeconds?: number;
}

export interface WrkResult {
  requests: number;
  durationSeconds: number;
  bytes: number;
  /** Responses with status >= 400 plus socket errors and timeouts. */
  errors: number;
  requestsPerSecond: number;
  bytesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** A Lua long-bracket string; callers keep a space before it after `[`, which would otherwise open one. */
function luaString(text: string): string {
  let level = '';
  while (text.includes(`]${level}]`)) level += '=';
  return `[${level}[${text}]${level}]`;
}

function script(spec: WrkSpec): string {
  const lines = [`wrk.method = ${luaString(spec.method ?? 'GET')}`];
  for (const [name, value] of Object.entries(spec.headers ?? {})) lines.push(`wrk.headers[ ${luaString(name)} ] = ${luaString(value)}`);
  if (spec.body !== undefined) lines.push(`wrk.body = ${luaString(spec.body)}`);
  if (spec.uniquePathPrefix !== undefined) {
    lines.push(
      'local nextThread = 0',
      'function setup(thread) nextThread = nextThread + 1; thread:set("tid", nextThread) end',
      'local n = 0',
      `function request() n = n + 1; return wrk.format(nil, ${luaString(spec.uniquePathPrefix)} .. tostring(tid) .. "-" .. tostring(n)) end`,
    );
  }
  lines.push(
    'function done(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration, summary.bytes,',
    '    e.status, e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))',
    'end',
  );
  return lines.join('\n') + '\n';
}

export async function runWrk(spec: WrkSpec, scratch: string): Promise<WrkResult> {
  const file = join(scratch, `wrk-${process.pid}-${Date.now()}.lua`);
  await writeFile(file, script(spec));
  const threads = Math.min(2, spec.connections);
  const args = [
    '-t',
    String(threads),
    '-c',
    String(spec.connections),
    '-d',
    `${spec.durationSeconds}s`,
    '--timeout',
    `${spec.timeoutSeconds ?? 10}s`,
    '-s',
    file,
    spec.url,
  ];
  const { stdout } = await run(WRK_BINARY, args, { maxBuffer: 1 << 20, timeout: (spec.durationSeconds + 60) * 1000 });
  const line = stdout.split('\n').find((l) => l.startsWith('BENCH '));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const [requests, durationUs, bytes, status, connect, read, write, timeout, p50, p99, max] = line.slice(6).trim().split(/\s+/).map(Number) as number[];
  const durationSeconds = (durationUs ?? 0) / 1e6;
  return {
    requests: requests ?? 0,
    durationSeconds,
    bytes: bytes ?? 0,
    errors: (status ?? 0) + (connect ?? 0) + (read ?? 0) + (write ?? 0) + (timeout ?? 0),
    requestsPerSecond: (requests ?? 0) / durationSeconds,
    bytesPerSecond: (bytes ?? 0) / durationSeconds,
    p50Ms: (p50 ?? 0) / 1000,
    p99Ms: (p99 ?? 0) / 1000,
    maxMs: (max ?? 0) / 1000,
  };
}
