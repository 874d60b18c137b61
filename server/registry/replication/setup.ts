// Replication in a server process: the local side of every rule, built on the app's own services.
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import type { BlobService } from '../blobs.js';
import type { ManifestService } from '../manifests.js';
import type { UploadService } from '../uploads.js';
import { LocalEndpoint } from './local.js';

export interface ReplicationRuntime {
  /** This Berth as a rule's source or target; changes are recorded as the rule's (a system actor). */
  localEndpoint(rule: string): LocalEndpoint;
}

export interface ReplicationSetup {
  metadata: MetadataStore;
  manifests: ManifestService;
  blobs: BlobService;
  uploads: UploadService;
}

export function setupReplication(setup: ReplicationSetup): ReplicationRuntime {
  return {
    localEndpoint: (rule) => new LocalEndpoint({ ...setup, origin: { actor: `replication:${rule}`, actorKind: 'system' } }),
  };
}
