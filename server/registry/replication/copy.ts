// Copies one artifact from a source endpoint to a target endpoint with its digest unchanged: blobs
// first (skipped when the target has them, mounted when another repository there does, else streamed
// in chunks that resume after a failure), then child manifests, then the manifest itself, then, when
// the rule says so, its referrers (signatures, SBOMs), which follow their subject.
import type { Readable } from 'node:stream';
import { OciError } from '../../errors.js';
import { isExternal, parseManifest, type Descriptor } from '../manifest-parse.js';
import type { FetchedManifest, ReplicationEndpoint } from './endpoint.js';

/** Referrers of referrers (a signature of an SBOM) are followed this deep. */
const MAX_REFERRER_DEPTH = 3;
/** Blobs of one manifest copied at once. */
const BLOB_CONCURRENCY = 3;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string | undefined;
}

export interface CopyOptions {
  /** Which children of an index are copied; undefined: all. */
  platforms?: ((platform: Platform) => boolean) | undefined;
  referrers: boolean;
  chunkBytes: number;
  /** Wraps every blob stream read from the source (the rule's bandwidth cap). */
  throttle?: ((stream: Readable) => Readable) | undefined;
  signal: AbortSignal;
}

export interface CopyCounts {
  manifests: number;
  blobsUploaded: number;
  blobsMounted: number;
  blobsPresent: number;
  /** Bytes of blobs sent to the target. */
  bytes: number;
}

export function emptyCounts(): CopyCounts {
  return { manifests: 0, blobsUploaded: 0, blobsMounted: 0, blobsPresent: 0, bytes: 0 };
}

export class ArtifactCopier {
  readonly counts = emptyCounts();
  /** Target repositories known (from this copier's work) to hold a blob: mount sources. */
  private readonly holders = new Map<string, string[]>();
  /** Indexes this copier stored without some children (the platform filter). */
  private readonly partial = new Map<string, boolean>();

  constructor(
    private readonly source: ReplicationEndpoint,
    private readonly target: ReplicationEndpoint,
    private readonly options: CopyOptions,
  ) {}

  /**
   * Makes `targetRepo` hold `manifest` (read from `sourceRepo`) and everything it references, then
   * points `tags` at it. A manifest the target has already is not copied again, only tagged.
   */
  async copy(sourceRepo: string, targetRepo: string, manifest: FetchedManifest, tags: readonly string[]): Promise<void> {
    await this.copyManifest(sourceRepo, targetRepo, manifest, 0);
    const partial = this.partial.get(manifest.digest) ?? this.leavesOutChildren(manifest);
    for (const tag of tags) await this.target.putManifest(targetRepo, tag, manifest, this.options.signal, partial);
  }

  /** The referrers of `digest` (which the target has) the target lacks, and theirs. */
  async copyReferrers(sourceRepo: string, targetRepo: string, digest: string): Promise<void> {
    if (this.options.referrers) await this.followReferrers(sourceRepo, targetRepo, digest, 0);
  }

  private async followReferrers(sourceRepo: string, targetRepo: string, digest: string, depth: number): Promise<void> {
    if (depth >= MAX_REFERRER_DEPTH) return;
    const { signal } = this.options;
    let listed: Set<string> | undefined;
    for (const referrer of await this.source.referrers(sourceRepo, digest, signal)) {
      if (await this.target.headManifest(targetRepo, referrer.digest, signal)) {
        // On the target but not listed as a referrer there (a tag schema index lost or never kept,
        // on a registry without the referrers API): putting it again lists it.
        listed ??= new Set((await this.target.referrers(targetRepo, digest, signal)).map((r) => r.digest));
        if (!listed.has(referrer.digest)) {
          const fetched = await this.source.getManifest(sourceRepo, referrer.digest, signal);
          if (fetched) await this.target.putManifest(targetRepo, referrer.digest, fetched, signal);
        }
        await this.followReferrers(sourceRepo, targetRepo, referrer.digest, depth + 1);
        continue;
      }
      const fetched = await this.source.getManifest(sourceRepo, referrer.digest, signal);
      // Deleted on the source since it was listed: nothing to follow.
      if (fetched) await this.copyManifest(sourceRepo, targetRepo, fetched, depth + 1);
    }
  }

  private async copyManifest(sourceRepo: string, targetRepo: string, manifest: FetchedManifest, depth: number): Promise<void> {
    const { signal } = this.options;
    if (!(await this.target.headManifest(targetRepo, manifest.digest, signal))) {
      const parsed = parseManifest(manifest.bytes, manifest.mediaType);
      await this.copyBlobs(
        sourceRepo,
        targetRepo,
        parsed.blobs.filter((b) => !isExternal(b)),
      );
      const children = this.childrenToCopy(manifest, parsed.children);
      for (const child of children) {
        const fetched = await this.source.getManifest(sourceRepo, child.digest, signal);
        if (!fetched)
          throw new OciError('MANIFEST_UNKNOWN', `child manifest ${child.digest} of ${manifest.digest} is not in ${this.source.name}:${sourceRepo}`);
        await this.copyManifest(sourceRepo, targetRepo, fetched, depth);
      }
      const partial = children.length < parsed.children.length;
      this.partial.set(manifest.digest, partial);
      await this.target.putManifest(targetRepo, manifest.digest, manifest, signal, partial);
      this.counts.manifests++;
    }
    if (this.options.referrers) await this.followReferrers(sourceRepo, targetRepo, manifest.digest, depth);
  }

  private leavesOutChildren(manifest: FetchedManifest): boolean {
    const { children } = parseManifest(manifest.bytes, manifest.mediaType);
    return this.childrenToCopy(manifest, children).length < children.length;
  }

  /** An index's children, less those the rule's platform filter leaves out. */
  private childrenToCopy(manifest: FetchedManifest, children: Descriptor[]): Descriptor[] {
    const keep = this.options.platforms;
    if (!keep || children.length === 0) return children;
    const platforms = platformsOf(manifest.bytes);
    return children.filter((child) => {
      const platform = platforms.get(child.digest);
      // A child that names no platform (an attestation list, say) is not an image for some platform: kept.
      return platform === undefined || keep(platform);
    });
  }

  private async copyBlobs(sourceRepo: string, targetRepo: string, blobs: Descriptor[]): Promise<void> {
    const queue = [...new Map(blobs.map((b) => [b.digest, b])).values()];
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next; next = queue.shift()) await this.copyBlob(sourceRepo, targetRepo, next);
    };
    await Promise.all(Array.from({ length: Math.min(BLOB_CONCURRENCY, queue.length) }, worker));
  }

  private async copyBlob(sourceRepo: string, targetRepo: string, blob: Descriptor): Promise<void> {
    const { signal, throttle } = this.options;
    const open = async (offset: number, openSignal: AbortSignal): Promise<Readable> => {
      const body = await this.source.openBlob(sourceRepo, blob.digest, offset, openSignal);
      if (body.size !== blob.size) {
        body.stream.destroy();
        throw new OciError(
          'SIZE_INVALID',
          `blob ${blob.digest} has ${body.size} bytes in ${this.source.name}:${sourceRepo}, not the ${blob.size} its manifest says`,
        );
      }
      return throttle ? throttle(body.stream) : body.stream;
    };
    const mountFrom = (this.holders.get(blob.digest) ?? []).filter((repo) => repo !== targetRepo);
    const result = await this.target.putBlob(targetRepo, blob.digest, blob.size, open, { mountFrom, chunkBytes: this.options.chunkBytes, signal });
    this.holders.set(blob.digest, [...(this.holders.get(blob.digest) ?? []), targetRepo]);
    if (result === 'present') this.counts.blobsPresent++;
    else if (result === 'mounted') this.counts.blobsMounted++;
    else {
      this.counts.blobsUploaded++;
      this.counts.bytes += blob.size;
    }
  }
}

/** The `platform` of each child an index names, by digest. */
function platformsOf(bytes: Buffer): Map<string, Platform> {
  const platforms = new Map<string, Platform>();
  const parsed = JSON.parse(bytes.toString('utf8')) as { manifests?: unknown };
  if (!Array.isArray(parsed.manifests)) return platforms;
  for (const entry of parsed.manifests as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { digest, platform } = entry as { digest?: unknown; platform?: unknown };
    if (typeof digest !== 'string' || typeof platform !== 'object' || platform === null) continue;
    const { os, architecture, variant } = platform as Record<string, unknown>;
    if (typeof os !== 'string' || typeof architecture !== 'string') continue;
    platforms.set(digest, { os, architecture, variant: typeof variant === 'string' ? variant : undefined });
  }
  return platforms;
}
