import { OciError } from '../errors.js';
import { parseDigest } from './references.js';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  /** Withdrawn before OCI 1.1 but still pushed by some tools; its `blobs` are references. */
  ociArtifact: 'application/vnd.oci.artifact.manifest.v1+json',
} as const;

const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList]);
const IMAGE_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
const MAX_DESCRIPTORS = 10_000;
const MAX_DEPTH = 64;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ParsedManifest {
  /** The media type the manifest is stored and served with. */
  mediaType: string;
  kind: 'image' | 'index' | 'artifact';
  /** Blobs that must be present in the repository (config, layers, artifact blobs). */
  blobs: Descriptor[];
  /** Child manifests (indexes). */
  children: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string): OciError {
  return new OciError('MANIFEST_INVALID', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** JSON nesting depth without recursion, so hostile input cannot exhaust the stack. */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

function descriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, urls, artifactType, annotations } = v;
  if (typeof mediaType !== 'string' || mediaType.length === 0) throw invalid(`${where}.mediaType must be a non-empty string`);
  if (typeof digest !== 'string') throw invalid(`${where}.digest must be a string`);
  try {
    parseDigest(digest);
  } catch (err) {
    throw invalid(`${where}.digest: ${(err as Error).message}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  if (urls !== undefined && (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string'))) throw invalid(`${where}.urls must be an array of strings`);
  if (artifactType !== undefined && typeof artifactType !== 'string') throw invalid(`${where}.artifactType must be a string`);
  const d: Descriptor = { mediaType, digest, size };
  if (urls) d.urls = urls as string[];
  if (artifactType !== undefined) d.artifactType = artifactType as string;
  if (annotations !== undefined) d.annotations = stringMap(annotations, `${where}.annotations`);
  return d;
}

function stringMap(v: unknown, where: string): Record<string, string> {
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string')) throw invalid(`${where} must map strings to strings`);
  return v as Record<string, string>;
}

function descriptorList(v: unknown, where: string, required: boolean): Descriptor[] {
  if (v === undefined && !required) return [];
  if (!Array.isArray(v)) throw invalid(`${where} must be an array`);
  if (v.length > MAX_DESCRIPTORS) throw invalid(`${where} lists more than ${MAX_DESCRIPTORS} entries`);
  return v.map((x, i) => descriptor(x, `${where}[${i}]`));
}

/** Strips parameters (`; charset=…`) and case from a Content-Type. */
export function baseMediaType(contentType: string | undefined): string | undefined {
  const t = contentType?.split(';')[0]?.trim().toLowerCase();
  return t ? t : undefined;
}

/**
 * Parses and checks a pushed manifest. Any artifact or config media type is accepted; only the
 * structure of the known manifest kinds is enforced.
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  const text = bytes.toString('utf8');
  if (nestingDepth(text) > MAX_DEPTH) throw invalid(`manifest JSON nests deeper than ${MAX_DEPTH} levels`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalid(`manifest is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw invalid('manifest must be a JSON object');
  if (doc.schemaVersion !== 2) throw invalid('manifest schemaVersion must be 2 (schema 1 manifests are not supported)');
  const declared = doc.mediaType;
  if (declared !== undefined && typeof declared !== 'string') throw invalid('manifest mediaType must be a string');
  const header = baseMediaType(contentType);
  const genericHeader = header === undefined || header === 'application/json' || header === 'application/octet-stream';
  if (declared !== undefined && !genericHeader && declared !== header) {
    throw invalid(`manifest mediaType ${declared} does not match Content-Type ${header}`);
  }
  let mediaType = declared ?? (genericHeader ? undefined : header);
  if (mediaType === undefined) {
    if (Array.isArray(doc.manifests)) mediaType = MEDIA_TYPES.ociIndex;
    else if (isObject(doc.config)) mediaType = MEDIA_TYPES.ociManifest;
    else throw invalid('cannot tell the manifest type: send Content-Type or a mediaType field');
  }
  const artifactType = doc.artifactType;
  if (artifactType !== undefined && typeof artifactType !== 'string') throw invalid('artifactType must be a string');
  const annotations = doc.annotations === undefined ? undefined : stringMap(doc.annotations, 'annotations');
  const subject = doc.subject === undefined || doc.subject === null ? undefined : descriptor(doc.subject, 'subject');

  const result: ParsedManifest = { mediaType, kind: 'image', blobs: [], children: [] };
  if (subject) result.subject = subject;
  if (annotations) result.annotations = annotations;

  if (INDEX_TYPES.has(mediaType) || (!IMAGE_TYPES.has(mediaType) && mediaType !== MEDIA_TYPES.ociArtifact && Array.isArray(doc.manifests))) {
    result.kind = 'index';
    result.children = descriptorList(doc.manifests, 'manifests', true);
    if (typeof artifactType === 'string') result.artifactType = artifactType;
  } else if (mediaType === MEDIA_TYPES.ociArtifact) {
    result.kind = 'artifact';
    result.blobs = descriptorList(doc.blobs, 'blobs', false);
    if (typeof artifactType === 'string') result.artifactType = artifactType;
  } else {
    const config = descriptor(doc.config, 'config');
    const layers = descriptorList(doc.layers, 'layers', mediaType === MEDIA_TYPES.dockerManifest);
    result.blobs = [config, ...layers];
    result.artifactType = typeof artifactType === 'string' ? artifactType : config.mediaType;
  }
  return result;
}

/** Layers that live elsewhere (`urls`, non-distributable) need not be in the registry. */
export function isExternal(d: Descriptor): boolean {
  return (d.urls?.length ?? 0) > 0 && (d.mediaType.includes('nondistributable') || d.mediaType.includes('foreign'));
}
