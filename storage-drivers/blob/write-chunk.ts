import type { Writable } from 'node:stream';

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
