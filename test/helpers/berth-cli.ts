// One `berth …` command as an operator runs it: a child process of bin/berth.js, its exit code and output.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

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

/**
 * The configuration a command needs to work on a test registry's own stores, the filesystem storage
 * and embedded metadata under its `dir` (lmdb lets the command's process open them next to the
 * registry's), plus `extra` sections.
 */
export function cliSettings(dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    dataDir: dir,
    log: { level: 'silent' },
    storage: { driver: 'filesystem', filesystem: { root: join(dir, 'storage') } },
    metadata: { store: 'embedded', embedded: { path: join(dir, 'metadata') } },
    ...extra,
  };
}

/** Writes cliSettings(dir, extra) to `file` (default <dir>/berth.yaml); its path. */
export async function writeCliConfig(dir: string, extra: Record<string, unknown> = {}, file = join(dir, 'berth.yaml')): Promise<string> {
  await writeFile(file, stringify(cliSettings(dir, extra)));
  return file;
}
