import type { Database } from 'lmdb';

/** Binary lmdb keys of the embedded store: NUL-separated parts (no name, tag, digest or id holds a NUL). */
export const SEP = '\0';

export function key(...parts: string[]): Buffer {
  return Buffer.from(parts.join(SEP), 'utf8');
}

/** Range bounds covering every key that starts with `parts` followed by a separator. */
export function under(...parts: string[]): { start: Buffer; end: Buffer } {
  const base = parts.join(SEP);
  return { start: Buffer.from(base + SEP, 'utf8'), end: Buffer.from(base + '\x01', 'utf8') };
}

/** The first key strictly after `parts… last` within the same prefix (no key continues past a last part). */
export function after(...parts: string[]): Buffer {
  return Buffer.from(parts.join(SEP) + SEP, 'utf8');
}

export function ageKey(updatedAt: number, id: string): Buffer {
  const buf = Buffer.alloc(6 + Buffer.byteLength(id));
  buf.writeUIntBE(Math.max(0, Math.min(updatedAt, 2 ** 48 - 1)), 0, 6);
  buf.write(id, 6, 'utf8');
  return buf;
}

export function lastPart(k: Buffer, prefixBytes: number): string {
  return k.subarray(prefixBytes).toString('utf8');
}

export type Db<V> = Database<V, Buffer>;
