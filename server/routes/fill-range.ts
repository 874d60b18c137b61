import { Readable } from 'node:stream';
import type { ServedBlob } from '../registry/proxy/fills.js';

/**
 * Bytes `start`..`end` (inclusive) of a blob being filled, taken from its whole-blob stream as it
 * arrives. The last byte waits until the fill committed (its digest verified), so a corrupt or failed
 * fill cuts the response short rather than letting it end cleanly. The stream is read to its end even
 * past `end`: a follower of another process's fill learns of the commit only there, and a follower of
 * a fill in this process reads the fill's memory, which costs next to nothing. Destroying the result
 * destroys the follower; the fill itself runs on (it serves every other client).
 */
export function fillRange(served: ServedBlob, start: number, end: number): Readable {
  const source = served.stream;
  let offset = 0;
  let last: Buffer | undefined;
  const out = new Readable({
    read() {
      source.resume();
    },
    destroy(err, callback) {
      source.destroy();
      callback(err);
    },
  });
  source.on('data', (piece: Buffer) => {
    const from = Math.max(start - offset, 0);
    const to = Math.min(end + 1 - offset, piece.length);
    const endsHere = offset + to === end + 1;
    offset += piece.length;
    if (to <= from) return;
    if (endsHere) last = piece.subarray(to - 1, to);
    const now = piece.subarray(from, endsHere ? to - 1 : to);
    if (now.length > 0 && !out.push(now)) source.pause();
  });
  source.once('error', (err) => out.destroy(err));
  source.once('end', () => {
    served.whenCommitted.then(
      () => {
        // A follower ends only with the whole blob; short of the range it would be a clean short body.
        if (offset <= end) {
          out.destroy(new Error(`the fill of ${served.size} bytes ended after ${offset}`));
          return;
        }
        if (last) out.push(last);
        out.push(null);
      },
      (err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))),
    );
  });
  return out;
}
