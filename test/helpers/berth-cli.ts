// One `berth …` command as an operator runs it: a child process of bin/berth.js, its exit code and output.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** bin/berth.js, from dist/test/helpers/berth-cli.js. */
const BERTH_BIN = fileURLToPath(new URL('../../../bin/berth.js', import.meta.url));

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runBerth(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BERTH_BIN, ...args],
      { env: { PATH: process.env.PATH ?? '', ...options.env }, timeout: options.timeoutMs ?? 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
