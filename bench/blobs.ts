// Synthetic blobs that cost the client almost nothing to send: a unique 32-byte head followed by one
// shared random block repeated. Every blob has its own digest (computed once, before any timing), and
// sending one is a series of zero-copy slices of the same buffer.
import { createHash, randomBytes } from 'node:crypto';

const BLOCK = randomBytes(1024 * 1024);
const HEAD_BYTES = 32;

export interface SyntheticBlob {
  size: number;
  digest: string;
  head: Buffer;
}

let counter = 0;
const runTag = randomBytes(6).toString('hex');

/** Pieces of the blob's bytes in [start, end), each at most one block long. */
export function* pieces(blob: SyntheticBlob, start = 0, end = blob.size): Generator<Buffer> {
  let offset = start;
  while (offset < end) {
    if (offset < HEAD_BYTES) {
      const piece = blob.head.subarray(offset, Math.min(HEAD_BYTES, end));
      offset += piece.length;
      yield piece;
      continue;
    }
    const at = (offset - HEAD_BYTES) % BLOCK.length;
    const piece = BLOCK.subarray(at, Math.min(BLOCK.length, at + end - offset));
    offset += piece.length;
    yield piece;
  }
}

export function makeBlob(size: number): SyntheticBlob {
  if (size < HEAD_BYTES) throw new Error(`synthetic blobs are at least ${HEAD_BYTES} bytes`);
  const head = Buffer.alloc(HEAD_BYTES, ' ');
  head.write(`berth-bench ${runTag} ${(counter++).toString(36)}`);
  const blob: SyntheticBlob = { size, head, digest: '' };
  const hash = createHash('sha256');
  for (const piece of pieces(blob)) hash.update(piece);
  blob.digest = `sha256:${hash.digest('hex')}`;
  return blob;
}

/** A small blob held in memory (configs, manifests). */
export interface SmallBlob {
  data: Buffer;
  digest: string;
  size: number;
}

export function smallBlob(data: Buffer | string): SmallBlob {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return { data: buf, digest: `sha256:${createHash('sha256').update(buf).digest('hex')}`, size: buf.length };
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export function imageConfig(nonce: string): SmallBlob {
  return smallBlob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: { nonce } } }));
}

export function imageManifest(config: SmallBlob, layers: { digest: string; size: number }[]): SmallBlob {
  return smallBlob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
    }),
  );
}
