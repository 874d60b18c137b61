// The management API's answers that both sides name: the server builds them
// (server/registry/repository-summary.ts) and the UI reads them. Types only, no DOM and no Node, so
// both compilations take this one file.

export interface RepositorySummary {
  name: string;
  tagCount: number;
  /** Bytes of the tagged manifests and everything they reference, each digest once. */
  sizeBytes: number;
  lastPushedAt: string | null;
  lastPulledAt: string | null;
  pulls: number;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface TagSummary {
  tag: string;
  digest: string;
  mediaType: string;
  sizeBytes: number;
  pushedAt: string;
  pulls: number;
  lastPulledAt: string | null;
  immutable: boolean;
  platforms: Platform[];
}
