import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';

const ROOT = new URL('../../../', import.meta.url).pathname;
const READY_TIMEOUT_MS = 15_000;

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port from the OS');
  return address.port;
}

export interface BerthProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGKILL, as a crash; resolves when the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Runs `node bin/berth.js serve` (the compiled server) as its own process with `config` written to a
 * YAML file in `dir`, on a free port; resolves once GET /v2/ answers.
 */
export async function startBerthProcess(dir: string, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<BerthProcess> {
  const port = await freePort();
  const file = join(dir, `berth-${port}.yaml`);
  await writeFile(file, stringify({ ...config, http: { host: '127.0.0.1', port, ...(config.http as object | undefined) } }));
  const child = spawn(process.execPath, [join(ROOT, 'bin/berth.js'), 'serve', '--config', file], {
    cwd: dir,
    env: { ...process.env, ...env, BERTH_CONFIG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`berth exited with ${child.exitCode} before it was ready:\n${output}`);
    try {
      const res = await fetch(`${url}/v2/`);
      if (res.status === 200 || res.status === 401) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`berth did not become ready within ${READY_TIMEOUT_MS} ms:\n${output}`);
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
  }
  return {
    url,
    port,
    child,
    output: () => output,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      return child.exitCode;
    },
  };
}
