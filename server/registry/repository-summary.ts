import type { ManifestService } from './manifests.js';
import type { Digest, MetadataStore } from '../../storage-drivers/metadata/types.js';
// The answers' shapes are the UI's too: typed once, where both compilations read them.
import type { Platform, RepositorySummary, TagSummary } from '../../ui/src/wire.js';

export type { Platform, RepositorySummary, TagSummary };

/** What the management API's repository and tag listings read from the metadata store. */

/**
 * Repositories and tags a listing reads before sorting; beyond it the listing is cut (documented).
 * Only names, push times and pull totals are read for all of them: sizes and platforms only for a page.
 */
export const SCAN_LIMIT = 100_000;

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

/** Indexes nest at most a level or two in practice; the bound keeps a crafted cycle finite. */
const MAX_DEPTH = 3;

/**
 * Bytes of the manifests `roots` and everything they reference, each digest once (so a repository's
 * layers shared by several tags count once). A child manifest of an index counts with its own
 * references. Read a level at a time, each level's manifests and blob links in one batched read of
 * each: a 30,000-tag repository costs a few store reads, not 30,000.
 */
async function sizeOf(metadata: MetadataStore, repo: string, roots: Digest[]): Promise<number> {
  const seen = new Set<Digest>();
  let size = 0;
  let level = roots;
  for (let depth = 0; level.length > 0; depth++) {
    const digests = [...new Set(level)].filter((d) => !seen.has(d));
    for (const d of digests) seen.add(d);
    if (digests.length === 0) break;
    const manifests = await metadata.getManifests(repo, digests);
    const blobs = digests.filter((_, i) => manifests[i] === undefined);
    for (const link of blobs.length === 0 ? [] : await metadata.getBlobLinks(repo, blobs)) size += link?.size ?? 0;
    const next: Digest[] = [];
    for (const manifest of manifests) {
      if (manifest === undefined) continue;
      size += manifest.size;
      // References of a manifest deeper than the bound are not followed (counted: the manifest itself).
      if (depth <= MAX_DEPTH) next.push(...manifest.references);
    }
    level = next;
  }
  return size;
}

export async function summarizeRepository(metadata: MetadataStore, repo: string, now: number): Promise<RepositorySummary> {
  const tags = await metadata.listTagDetails(repo, { n: SCAN_LIMIT });
  const [sizeBytes, pulls] = await Promise.all([
    sizeOf(
      metadata,
      repo,
      tags.map((t) => t.digest),
    ),
    // Totals only: no day of the series is read.
    metadata.pulls.repositoryPulls(repo, { days: 0, now }),
  ]);
  const lastPush = tags.reduce<number | undefined>((max, t) => (max === undefined || t.pushedAt > max ? t.pushedAt : max), undefined);
  return { name: repo, tagCount: tags.length, sizeBytes, lastPushedAt: iso(lastPush), lastPulledAt: iso(pulls.last), pulls: pulls.count };
}

interface IndexJson {
  manifests?: Array<{ platform?: { os?: unknown; architecture?: unknown; variant?: unknown } }>;
}

function platformsOf(bytes: Buffer): Platform[] {
  let parsed: IndexJson;
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as IndexJson;
  } catch {
    return [];
  }
  const out: Platform[] = [];
  for (const m of Array.isArray(parsed.manifests) ? parsed.manifests : []) {
    const p = m.platform;
    if (p === undefined || typeof p.os !== 'string' || typeof p.architecture !== 'string') continue;
    out.push({ os: p.os, architecture: p.architecture, ...(typeof p.variant === 'string' ? { variant: p.variant } : {}) });
  }
  return out;
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/** What a tag listing sorts and filters on: read for every tag, without touching manifests. */
export interface TagListing {
  tag: string;
  digest: Digest;
  pushedAt: number;
  pulls: number;
  lastPulledAt: number | null;
}

/** Every tag of `repo` with its push time and pull totals: two store reads, whatever the tag count. */
export async function listTagListings(metadata: MetadataStore, repo: string): Promise<TagListing[]> {
  const details = await metadata.listTagDetails(repo, { n: SCAN_LIMIT });
  const totals = await metadata.pulls.tagPulls(
    repo,
    details.map((d) => d.tag),
  );
  return details.map((d) => {
    const t = totals.get(d.tag);
    return { tag: d.tag, digest: d.digest, pushedAt: d.pushedAt, pulls: t?.count ?? 0, lastPulledAt: t?.last ?? null };
  });
}

/** The full entries of one page of tags: manifest, size and platforms are read here, per tag. */
export async function summarizeTags(metadata: MetadataStore, manifests: ManifestService, repo: string, page: TagListing[]): Promise<TagSummary[]> {
  const out: TagSummary[] = [];
  for (const d of page) {
    const record = await metadata.getManifest(repo, d.digest);
    // Deleted between the two reads: the tag is gone too.
    if (record === undefined) continue;
    const sizeBytes = await sizeOf(metadata, repo, [d.digest]);
    const platforms = INDEX_TYPES.has(record.mediaType) ? platformsOf(await manifests.read(record)) : [];
    out.push({
      tag: d.tag,
      digest: d.digest,
      mediaType: record.mediaType,
      sizeBytes,
      pushedAt: new Date(d.pushedAt).toISOString(),
      pulls: d.pulls,
      lastPulledAt: iso(d.lastPulledAt ?? undefined),
      immutable: manifests.immutableTags.match(repo, d.tag) !== undefined,
      platforms,
    });
  }
  return out;
}
