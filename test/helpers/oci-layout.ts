import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface LayoutDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string };
  artifactType?: string;
}

/** Writes OCI image layouts (oci-layout, index.json, blobs/) for skopeo to copy from. */
export class OciLayout {
  private readonly entries: LayoutDescriptor[] = [];
  constructor(readonly dir: string) {}

  async init(): Promise<this> {
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    return this;
  }

  async addBlob(data: Buffer, mediaType: string): Promise<LayoutDescriptor> {
    const hex = createHash('sha256').update(data).digest('hex');
    await writeFile(join(this.dir, 'blobs', 'sha256', hex), data);
    return { mediaType, digest: `sha256:${hex}`, size: data.length };
  }

  /** A gzip'd tar layer holding one small random file. */
  async addLayer(name: string, size: number): Promise<{ desc: LayoutDescriptor; diffId: string }> {
    const content = randomBytes(size);
    const header = Buffer.alloc(512);
    header.write(name, 0, 100);
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
    header.write('00000000000\0', 136);
    header.write('        ', 148);
    header.write('0', 156);
    header.write('ustar\0', 257);
    header.write('00', 263);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    const pad = Buffer.alloc((512 - (size % 512)) % 512);
    const tar = Buffer.concat([header, content, pad, Buffer.alloc(1024)]);
    const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
    const desc = await this.addBlob(gzipSync(tar), 'application/vnd.oci.image.layer.v1.tar+gzip');
    return { desc, diffId };
  }

  /** An image manifest (config + layers), not yet listed in index.json. */
  async addImage(layerSizes: number[], platform = { os: 'linux', architecture: 'amd64' }, extra: Record<string, unknown> = {}): Promise<LayoutDescriptor> {
    const layers = [];
    for (const [i, s] of layerSizes.entries()) layers.push(await this.addLayer(`file${i}`, s));
    const config = await this.addBlob(
      Buffer.from(
        JSON.stringify({
          ...platform,
          created: '2026-01-01T00:00:00Z',
          config: {},
          rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
          history: [],
        }),
      ),
      'application/vnd.oci.image.config.v1+json',
    );
    const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: layers.map((l) => l.desc), ...extra };
    const desc = await this.addBlob(Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
    return { ...desc, platform };
  }

  async addIndex(manifests: LayoutDescriptor[]): Promise<LayoutDescriptor> {
    const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests };
    return this.addBlob(Buffer.from(JSON.stringify(index)), index.mediaType);
  }

  /** Lists `desc` in index.json under `ref` (the name skopeo's oci:DIR:REF uses). */
  async tag(desc: LayoutDescriptor, ref: string): Promise<void> {
    const { platform: _platform, ...plain } = desc;
    this.entries.push({ ...plain, annotations: { 'org.opencontainers.image.ref.name': ref } });
    await writeFile(
      join(this.dir, 'index.json'),
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: this.entries }),
    );
  }
}
