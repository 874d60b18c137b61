// What the scan hook decides and builds, apart from HTTP and processes: which pushed manifests are
// images to scan, and the referrer manifest that attaches a report to one.
import type { BerthCloudEvent } from './hook-receiver.js';
import { sha256Digest } from './registry-client.js';

export const DEFAULT_ARTIFACT_TYPE = 'application/vnd.berth.scan-report.v1+json';
export const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', data: Buffer.from('{}') };
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** What a scanner can pull and scan: image manifests and indexes, OCI and Docker. */
const IMAGE_MEDIA_TYPES = new Set([
  OCI_MANIFEST,
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
/** An image manifest's artifactType defaults to its config's media type: these still mean "an image". */
const IMAGE_CONFIG_TYPES = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

const REPOSITORY = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const DIGEST = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface ScanJob {
  eventId: string;
  repository: string;
  subject: Descriptor;
  tags: string[];
}

/** The image an event asks to scan, or why the event is not one to scan. */
export function scanTarget(event: BerthCloudEvent): ScanJob | string {
  if (event.type !== 'io.berth.manifest.pushed') return `not a manifest push (${event.type})`;
  const { repository, target } = event.data;
  if (typeof repository !== 'string' || !REPOSITORY.test(repository)) return 'the event names no valid repository';
  if (!target || typeof target.digest !== 'string' || !DIGEST.test(target.digest)) return 'the event has no valid target digest';
  if (typeof target.mediaType !== 'string' || typeof target.size !== 'number') return 'the event target lacks mediaType or size';
  // A manifest with a subject is itself a referrer (a report, a signature, an SBOM): never scan it,
  // or the hook would scan its own reports.
  if (target.subject !== undefined && target.subject !== null) return 'a referrer (it has a subject)';
  if (!IMAGE_MEDIA_TYPES.has(target.mediaType)) return `not an image (${target.mediaType})`;
  if (target.artifactType !== undefined && !IMAGE_CONFIG_TYPES.has(target.artifactType)) return `an artifact, not an image (${target.artifactType})`;
  const tags = Array.isArray(target.tags) ? target.tags.filter((t): t is string => typeof t === 'string') : [];
  return { eventId: event.id, repository, subject: { mediaType: target.mediaType, digest: target.digest, size: target.size }, tags };
}

export interface ReportManifestInput {
  artifactType: string;
  subject: Descriptor;
  report: { mediaType: string; digest: string; size: number };
  scannerName: string;
  createdAt: Date;
  eventId: string;
}

/** The referrer: an image manifest with an empty config, the report as its one layer, and the scanned image as subject. */
export function reportManifest(input: ReportManifestInput): Buffer {
  const extension = input.report.mediaType.endsWith('json') ? 'json' : 'txt';
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: input.artifactType,
    config: { mediaType: EMPTY_CONFIG.mediaType, digest: sha256Digest(EMPTY_CONFIG.data), size: EMPTY_CONFIG.data.length },
    layers: [
      {
        mediaType: input.report.mediaType,
        digest: input.report.digest,
        size: input.report.size,
        // oras pull names the file after this.
        annotations: { 'org.opencontainers.image.title': `${input.scannerName}-report.${extension}` },
      },
    ],
    subject: input.subject,
    annotations: {
      'org.opencontainers.image.created': input.createdAt.toISOString(),
      'io.berth.scan.scanner': input.scannerName,
      'io.berth.scan.event-id': input.eventId,
    },
  };
  return Buffer.from(JSON.stringify(manifest));
}
