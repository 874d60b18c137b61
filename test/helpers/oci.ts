import { createHash, randomBytes } from 'node:crypto';

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface Blob {
  data: Buffer;
  digest: string;
  size: number;
}

export function blob(data: Buffer | string): Blob {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return { data: buf, digest: sha256(buf), size: buf.length };
}

export function randomBlob(size: number): Blob {
  return blob(randomBytes(size));
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** An OCI image manifest over `config` and `layers` (bytes + digest). */
export function imageManifest(config: Blob, layers: Blob[], extra: Record<string, unknown> = {}): Blob & { json: Record<string, unknown> } {
  const json = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
    ...extra,
  };
  return { ...blob(JSON.stringify(json)), json };
}

/** Minimal client for the tests: push blobs and manifests the way docker does. */
export class RegistryClient {
  constructor(
    readonly base: string,
    readonly headers: Record<string, string> = {},
  ) {}

  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.base}${path}`, { ...init, headers: { ...this.headers, ...(init.headers as Record<string, string> | undefined) } });
  }

  async pushBlob(repo: string, b: Blob): Promise<void> {
    const res = await this.fetch(`/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
      method: 'POST',
      body: b.data,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    if (res.status !== 201) throw new Error(`push blob ${b.digest}: ${res.status} ${await res.text()}`);
  }

  async pushManifest(repo: string, reference: string, m: Blob, mediaType = OCI_MANIFEST): Promise<Response> {
    const res = await this.fetch(`/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: m.data, headers: { 'Content-Type': mediaType } });
    if (res.status !== 201) throw new Error(`push manifest ${reference}: ${res.status} ${await res.text()}`);
    return res;
  }

  /** Pushes config, layers and the manifest under `tag`. */
  async pushImage(repo: string, tag: string, layerSizes: number[] = [1024]): Promise<{ manifest: Blob; config: Blob; layers: Blob[] }> {
    const config = blob(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(8).toString('hex') }),
    );
    const layers = layerSizes.map((s) => randomBlob(s));
    for (const b of [config, ...layers]) await this.pushBlob(repo, b);
    const manifest = imageManifest(config, layers);
    await this.pushManifest(repo, tag, manifest);
    return { manifest, config, layers };
  }
}
