import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Writes a file so readers see either the old or the new content, never a torn one. */
export async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Keeps a value parsed from a file and re-parses it when the file changes. The check is one
 * `stat` (inode, size, mtime), shared by concurrent callers, so it is cheap enough per request.
 * A file that turns invalid keeps the last good value (reported through onError), so a typo
 * neither opens the registry nor locks everyone out.
 */
export class FileBacked<T> {
  private value: T;
  private signature = '';
  private pending: Promise<T> | undefined;
  private loaded = false;
  private checkedAt = 0;

  constructor(
    private readonly path: string,
    private readonly parse: (text: string | undefined) => T,
    private readonly onError: (err: unknown) => void,
    /** Skip the stat when the last check is younger than this (unless forced). */
    private readonly minIntervalMs = 0,
  ) {
    this.value = parse(undefined);
  }

  /** Loads now; throws if the file exists but cannot be parsed (used at startup). */
  async load(): Promise<T> {
    const sig = await this.statSignature();
    this.value = this.parse(sig === 'absent' ? undefined : await readText(this.path));
    this.signature = sig;
    this.loaded = true;
    this.checkedAt = Date.now();
    return this.value;
  }

  async get(options: { force?: boolean } = {}): Promise<T> {
    if (!this.loaded) return this.load();
    if (!options.force && this.minIntervalMs > 0 && Date.now() - this.checkedAt < this.minIntervalMs) return this.value;
    this.pending ??= this.refresh().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async refresh(): Promise<T> {
    this.checkedAt = Date.now();
    try {
      const sig = await this.statSignature();
      if (sig === this.signature) return this.value;
      const text = sig === 'absent' ? undefined : await readText(this.path);
      this.value = this.parse(text);
      this.signature = sig;
    } catch (err) {
      this.onError(err);
    }
    return this.value;
  }

  private async statSignature(): Promise<string> {
    try {
      const s = await stat(this.path, { bigint: true });
      return `${s.ino}:${s.size}:${s.mtimeNs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
      throw err;
    }
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
