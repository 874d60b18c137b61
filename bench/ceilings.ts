// The machine's own limits, measured in the same run as the registries so every figure can be read
// against them: OpenSSL SHA-256 in Node, durable sequential writes, and a trivial Node HTTP server
// (request rate and loopback transfer rate, both driven by wrk).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../test/helpers/berth-process.js';
import { cpuSeconds } from './proc.js';
import { runWrk } from './wrk.js';

const MiB = 1024 * 1024;

export interface Ceilings {
  sha256MBps: number;
  /** 8 MiB writes to a fresh file, then fsync, in one thread. */
  durableWriteMBps: number;
  trivialHttp: { requestsPerSecond: number; p50Ms: number; p99Ms: number; serverCpuMsPerRequest: number };
  /** A trivial Node server sending one in-memory 64 MiB buffer per request, 8 connections. */
  trivialPull: { MBps: number; serverCpuSecondsPerGB: number };
}

export function sha256Speed(totalBytes: number): number {
  const block = randomBytes(MiB);
  const start = process.hrtime.bigint();
  const hash = createHash('sha256');
  for (let done = 0; done < totalBytes; done += block.length) hash.update(block);
  hash.digest();
  return totalBytes / 1e6 / (Number(process.hrtime.bigint() - start) / 1e9);
}

export async function durableWriteSpeed(dir: string, totalBytes: number): Promise<number> {
  const file = join(dir, 'ceiling-write.bin');
  const block = randomBytes(8 * MiB);
  const start = process.hrtime.bigint();
  const handle = await open(file, 'w');
  try {
    for (let done = 0; done < totalBytes; done += block.length) await handle.write(block);
    await handle.sync();
  } finally {
    await handle.close();
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await rm(file, { force: true });
  return totalBytes / 1e6 / seconds;
}

const TRIVIAL_SERVER = `
const http = require('node:http');
const big = Buffer.alloc(64 * 1024 * 1024, 7);
const ok = Buffer.from('{"ok":true}');
http.createServer((req, res) => {
  if (req.url === '/big') { res.writeHead(200, { 'Content-Length': big.length }); res.end(big); return; }
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': ok.length });
  res.end(ok);
}).listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write('ready\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

export async function trivialServer(scratch: string, durationSeconds: number): Promise<Pick<Ceilings, 'trivialHttp' | 'trivialPull'>> {
  const port = await freePort();
  const child = spawn(process.execPath, ['-e', TRIVIAL_SERVER], { env: { ...process.env, PORT: String(port) }, stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await once(child.stdout, 'data');
    const pid = child.pid as number;
    const url = `http://127.0.0.1:${port}`;
    await runWrk({ url: `${url}/`, connections: 64, durationSeconds: 1 }, scratch);
    let cpu = cpuSeconds(pid);
    const small = await runWrk({ url: `${url}/`, connections: 64, durationSeconds }, scratch);
    const smallCpu = cpuSeconds(pid) - cpu;
    cpu = cpuSeconds(pid);
    const big = await runWrk({ url: `${url}/big`, connections: 8, durationSeconds, timeoutSeconds: 60 }, scratch);
    const bigCpu = cpuSeconds(pid) - cpu;
    return {
      trivialHttp: {
        requestsPerSecond: small.requestsPerSecond,
        p50Ms: small.p50Ms,
        p99Ms: small.p99Ms,
        serverCpuMsPerRequest: (smallCpu * 1000) / Math.max(1, small.requests),
      },
      trivialPull: { MBps: big.bytesPerSecond / 1e6, serverCpuSecondsPerGB: bigCpu / Math.max(1e-9, big.bytes / 1e9) },
    };
  } finally {
    child.stdin?.end();
    child.kill('SIGTERM');
  }
}

export async function measureCeilings(scratch: string, quick: boolean): Promise<Ceilings> {
  const sha256MBps = sha256Speed((quick ? 256 : 1024) * MiB);
  const durableWriteMBps = await durableWriteSpeed(scratch, (quick ? 256 : 1024) * MiB);
  const http = await trivialServer(scratch, quick ? 2 : 8);
  return { sha256MBps, durableWriteMBps, ...http };
}
