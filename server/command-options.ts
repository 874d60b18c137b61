// What the operator commands (`berth gc`, `pulls`, `quotas`, `retention`) share: reading options the
// same way, the same bad-usage answer (exit 2 with the help), and opening the configured stores.
import type { BerthConfig } from './config.js';
import { buildStorageStack, type StorageStack } from './storage-stack.js';

/** Bad usage: the command prints the message and its help and exits 2. */
export class UsageError extends Error {}

export interface OptionNames {
  /** Options followed by a value: `--config FILE`. */
  values: readonly string[];
  flags: readonly string[];
}

export function wantsHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

/** The arguments that are neither a known option nor an option's value. */
export function operands(args: readonly string[], names: OptionNames): string[] {
  return args.filter((a, i) => !names.flags.includes(a) && !names.values.includes(a) && !names.values.includes(args[i - 1] ?? ''));
}

/** For commands that take no operands: anything else is an unknown option. */
export function rejectUnknown(args: readonly string[], names: OptionNames): void {
  const unknown = operands(args, names)[0];
  if (unknown !== undefined) throw new UsageError(`unknown option ${unknown}`);
}

export function optionValue(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const text = args[i + 1];
  if (text === undefined || text.startsWith('--')) throw new UsageError(`${name} needs a value`);
  return text;
}

export function wholeNumber(args: readonly string[], name: string, min: number): number | undefined {
  const text = optionValue(args, name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${name} must be a whole number of at least ${min}, got ${JSON.stringify(text)}`);
  return n;
}

/** `berth <command>: <message>`, the help, exit status 2. */
export function reportUsage(command: string, message: string, help: string): void {
  process.stderr.write(`berth ${command}: ${message}\n\n${help}`);
  process.exitCode = 2;
}

/** Opens the configured stores, checks the metadata store answers, runs `work`, closes them whatever happened. */
export async function withStorage(config: BerthConfig, work: (storage: StorageStack) => Promise<void>): Promise<void> {
  const storage = await buildStorageStack(config);
  try {
    await storage.metadata.ping();
    await work(storage);
  } finally {
    await storage.close();
  }
}
