// Command-line plumbing shared by the recipe hooks: options, secret files, listening, stopping.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { log } from './hook-receiver.js';
import { parseSecrets } from './hook-signature.js';

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs, strict, with errors turned into UsageError (exit 2 with the usage text). */
export function parseOptions<T extends Options>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function required(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

export function integer(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer of at least ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/** A file's text with its trailing newline removed; the error names the option, never the content. */
export function readTextFile(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new UsageError(`--${option} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function readSecretFile(path: string, option = 'secret-file'): string[] {
  const secrets = parseSecrets(readTextFile(path, option));
  if (secrets.length === 0) throw new UsageError(`--${option} ${path} holds no secret (one per line)`);
  return secrets;
}

/** Listens, logs the port it got (tests start hooks on port 0 and read it), and returns it. */
export async function listen(server: Server, host: string, port: number, fields: Record<string, unknown>): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const bound = address !== null && typeof address === 'object' ? address.port : port;
  log({ level: 'info', msg: 'listening', host, port: bound, ...fields });
  return bound;
}

/** Runs `main`, reporting a UsageError or a start-up failure on stderr with exit code 2 or 1. */
export function runMain(usage: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${usage}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  });
}

/** On SIGTERM/SIGINT: stop taking requests, let `drain` finish, exit. */
export function stopOnSignals(server: Server, drain: () => Promise<Record<string, unknown>>): void {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close();
    server.closeIdleConnections();
    drain().then(
      (fields) => {
        log({ level: 'info', msg: 'stopped', ...fields });
        process.exit(0);
      },
      (err: unknown) => {
        log({ level: 'error', msg: 'stopped', error: err instanceof Error ? err.message : String(err) });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
