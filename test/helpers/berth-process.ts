// The real `berth serve` in a child process, for tests that kill it (SIGKILL), restart it, or run
// several over shared storage.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** bin/berth.js, from dist/test/helpers/berth-process.js. */
const BERTH_BIN = fileURLToPath(new URL('../../../bin/berth.js', import.meta.url));
const READY_TIMEOUT_MS = 15_000;
let configFiles = 0;

/** A port that was free a moment ago (for servers that cannot report the port they bound). */
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
  readonly url: string;
  readonly child: ChildProcess;
  /** Sends SIGKILL and resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (graceful shutdown); resolves with the exit code once the process is gone. */
  stop(): Promise<number | null>;
  /** Last lines of its output, for failure messages. */
  output(): string;
}

export interface BerthProcessOptions {
  /** BERTH_DATA_DIR: filesystem storage and embedded metadata live here unless `config` says otherwise. */
  dataDir: string;
  /** A configuration written to a YAML file in dataDir and passed with --config. */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  /** Called with every line the process writes to stdout (its JSON log), from the first on. */
  onLog?: (line: string) => void;
}

/**
 * Starts `count` processes at once. If any fails to start, the ones that did are stopped before the
 * error is thrown, so a slow machine never leaves a stray server behind to hang the run.
 */
export async function startBerthProcesses(count: number, options: BerthProcessOptions): Promise<BerthProcess[]> {
  const started = await Promise.allSettled(Array.from({ length: count }, () => startBerthProcess(options)));
  const procs = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(procs.map((p) => p.kill()));
    throw failed.reason;
  }
  return procs;
}

/**
 * Starts `node bin/berth.js serve` on 127.0.0.1 and a port the OS picks (the port is read from the
 * "Berth is serving" log line, so there is no free-port race). Resolves once GET /v2/ answers.
 */
export async function startBerthProcess(options: BerthProcessOptions): Promise<BerthProcess> {
  const args = [BERTH_BIN, 'serve'];
  if (options.config) {
    const file = join(options.dataDir, `berth-${process.pid}-${++configFiles}.yaml`);
    await writeFile(file, stringify(options.config));
    args.push('--config', file);
  }
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', PORT: '0', BERTH_DATA_DIR: options.dataDir, BERTH_HTTP_HOST: '127.0.0.1', BERTH_LOG_ACCESS: 'false', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const remember = (line: string) => {
    lines.push(line);
    if (lines.length > 50) lines.shift();
  };
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', remember);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`berth serve did not report its port within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${err.message}\n${lines.join('\n')}`));
    };
    const early = (code: number | null, signal: NodeJS.Signals | null) => fail(new Error(`berth serve exited early (${signal ?? code})`));
    child.once('exit', early);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      remember(line);
      options.onLog?.(line);
      let entry: { msg?: unknown; port?: unknown };
      try {
        entry = JSON.parse(line) as { msg?: unknown; port?: unknown };
      } catch {
        return;
      }
      if (entry.msg === 'Berth is serving' && typeof entry.port === 'number') {
        clearTimeout(timer);
        child.removeListener('exit', early);
        resolve(entry.port);
      }
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const handle: BerthProcess = {
    url,
    child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      return child.exitCode;
    },
    output: () => lines.join('\n'),
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const status = await fetch(`${url}/v2/`).then(
      (res) => res.status,
      () => 0,
    );
    if (status === 200 || status === 401) return handle;
    if (Date.now() > deadline) {
      await handle.kill();
      throw new Error(`berth serve on ${url} not ready within ${READY_TIMEOUT_MS} ms (last status ${status})\n${handle.output()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
