// Scratch directories under the OS temp dir, one per test file or test, removed afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ScratchDir {
  readonly path: string;
  remove(): Promise<void>;
}

export async function makeScratchDir(label = 'test'): Promise<ScratchDir> {
  const path = await mkdtemp(join(tmpdir(), `berth-${label}-`));
  return {
    path,
    remove: () => rm(path, { recursive: true, force: true, maxRetries: 3 }),
  };
}
