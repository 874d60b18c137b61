// The real `berth serve` in a child process, for tests that must kill it (SIGKILL) and restart it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** bin/berth.js, from dist/test/helpers/process.js. */
const BERTH_BIN = fileURLToPath(new URL('../../../bin/berth.js', import.meta.url));
const READY_TIMEOUT_MS = 15_000;

export interface BerthProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Sends SIGKILL and resolves once the process is gone. */
  kill(): Promise<void>;
  /** Last lines of its output, for failure messages. */
  output(): string;
}

/**
 * Starts `node bin/berth.js serve` on 127.0.0.1 and a port the OS picks (PORT=0; the port is read
 * from the startup log line), with filesystem storage and embedded metadata under `dataDir`.
 * Resolves once GET /v2/ answers 200.
 */
export async function startBerthProcess(dataDir: string, env: Record<string, string> = {}): Promise<BerthProcess> {
  const child = spawn(process.execPath, [BERTH_BIN, 'serve'], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', BERTH_DATA_DIR: dataDir, BERTH_HTTP_HOST: '127.0.0.1', BERTH_LOG_ACCESS: 'false', ...env },
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
    output: () => lines.join('\n'),
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const status = await fetch(`${url}/v2/`).then(
      (res) => res.status,
      () => 0,
    );
    if (status === 200) return handle;
    if (Date.now() > deadline) {
      await handle.kill();
      throw new Error(`berth serve on ${url} not ready within ${READY_TIMEOUT_MS} ms (last status ${status})\n${handle.output()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
