import { createHash, type Hash } from 'node:crypto';
import { createSHA256, type IHasher } from 'hash-wasm';

/**
 * The SHA-256 of an upload's bytes so far. OpenSSL's is about four times faster, but its state cannot
 * leave the process; hash-wasm's can (a 116-byte snapshot), so a chunked upload whose next PATCH lands
 * on another process continues hashing there instead of reading the blob back at the end.
 */
export interface RunningHash {
  /** Bytes hashed so far. */
  offset: number;
  update(chunk: Buffer): void;
  hex(): string;
  /** The state as base64 when it can be resumed elsewhere, else undefined. */
  save(): string | undefined;
}

class OpenSslHash implements RunningHash {
  offset = 0;
  private readonly hash: Hash = createHash('sha256');
  update(chunk: Buffer): void {
    this.hash.update(chunk);
  }
  hex(): string {
    return this.hash.digest('hex');
  }
  save(): undefined {
    return undefined;
  }
}

class ResumableHash implements RunningHash {
  constructor(
    private readonly hasher: IHasher,
    public offset: number,
  ) {}
  update(chunk: Buffer): void {
    this.hasher.update(chunk);
  }
  hex(): string {
    return this.hasher.digest('hex');
  }
  save(): string {
    return Buffer.from(this.hasher.save()).toString('base64');
  }
}

/** A fresh hash: resumable for chunked uploads, OpenSSL for a single streamed or monolithic body. */
export async function newRunningHash(resumable: boolean): Promise<RunningHash> {
  if (!resumable) return new OpenSslHash();
  const hasher = await createSHA256();
  hasher.init();
  return new ResumableHash(hasher, 0);
}

/** Continues from a saved state; undefined when the state is unusable (the bytes are re-read instead). */
export async function resumeHash(state: string, offset: number): Promise<RunningHash | undefined> {
  try {
    const hasher = await createSHA256();
    hasher.load(Buffer.from(state, 'base64'));
    return new ResumableHash(hasher, offset);
  } catch {
    return undefined;
  }
}
