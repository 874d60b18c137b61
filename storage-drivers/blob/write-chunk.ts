import type { Writable } from 'node:stream';
import { InvalidOffsetError, type SendCheck } from './types.js';

/** One write whose buffer may be reused once this resolves; rejects if the destination goes away. */
export function writeChunk(dest: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (dest.destroyed) {
      reject(new Error('destination closed'));
      return;
    }
    const onClose = () => reject(new Error('destination closed'));
    dest.once('close', onClose);
    dest.write(chunk, (err) => {
      dest.removeListener('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

/** What `sendThroughBuffers` sends, and how it reads. */
export interface BufferedSend {
  /** The object's key, for the error of a source that ends early. */
  key: string;
  /** One buffer (a range that fits it) or two, alternated: one is read into while the other is written. */
  buffers: Buffer[];
  /** Position of the first byte, as the source counts. */
  start: number;
  length: number;
  dest: Writable;
  signal?: AbortSignal | undefined;
  check?: SendCheck | undefined;
  /** Puts up to `want` bytes at `position` into `buffer`; how many it put there (0: the source ended). */
  read(buffer: Buffer, want: number, position: number): Promise<number>;
}

/**
 * The senders' pump: reads the next buffer while the socket writes the last, each write awaited before
 * its buffer is read into again, and the check shown every byte before the last one is written.
 */
export async function sendThroughBuffers(send: BufferedSend): Promise<void> {
  const { buffers, dest, signal, check } = send;
  let position = send.start;
  let left = send.length;
  let writing: Promise<void> = Promise.resolve();
  if (left === 0) check?.beforeLast();
  for (let i = 0; left > 0; i = (i + 1) % buffers.length) {
    signal?.throwIfAborted();
    // One buffer is read into again only once its write is done.
    if (buffers.length === 1) await writing;
    const buffer = buffers[i] as Buffer;
    const got = await send.read(buffer, Math.min(buffer.length, left), position);
    if (got === 0) throw new InvalidOffsetError(send.key, position);
    const chunk = buffer.subarray(0, got);
    const last = got === left;
    // The other buffer's write must finish before it is read into again, two turns from now.
    await writing;
    if (last && check) {
      check.update(chunk);
      check.beforeLast();
    }
    writing = writeChunk(dest, chunk);
    // Awaited on the next turn; until then a failure must not count as unhandled.
    writing.catch(() => undefined);
    // Hashed while the socket drains the chunk: this buffer is not read into again before the write
    // has finished (two turns from now), so the hash runs off the sending path.
    if (!last) check?.update(chunk);
    position += got;
    left -= got;
  }
  await writing;
}
