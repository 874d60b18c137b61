// `berth metadata rebuild`'s part for quotas: every namespace record recounted from the links the
// rebuild restored, replacing whatever the counters held (a crash's over-count, a lost Redis).
import type { NamespaceRecount } from '../../../storage-drivers/metadata/quota-types.js';
import { holderOf } from '../../../storage-drivers/metadata/quota-types.js';
import type { BlobLink, ManifestRecord, MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { namespaceOf } from './rules.js';

export interface RepositoryLinks {
  blobs: BlobLink[];
  manifests: ManifestRecord[];
}

/** Replaces each namespace's record with the one `links` make; namespaces with a record but no links are emptied. Returns how many were recounted. */
export async function recountNamespaces(store: MetadataStore, links: Map<string, RepositoryLinks>): Promise<number> {
  const byNamespace = new Map<string, Map<string, NamespaceRecount>>();
  const add = (repo: string, kind: 'blob' | 'manifest', digest: string, size: number) => {
    const ns = namespaceOf(repo);
    let digests = byNamespace.get(ns);
    if (!digests) byNamespace.set(ns, (digests = new Map()));
    const entry = digests.get(digest) ?? { digest, size, holders: [] };
    entry.holders.push(holderOf(kind, repo));
    digests.set(digest, entry);
  };
  for (const [repo, r] of links) {
    for (const link of r.blobs) add(repo, 'blob', link.digest, link.size);
    for (const manifest of r.manifests) add(repo, 'manifest', manifest.digest, manifest.size);
  }
  const stale: string[] = [];
  let last: string | undefined;
  for (;;) {
    const page = await store.quotas.namespaces({ n: 1000, last });
    stale.push(...page.filter((ns) => !byNamespace.has(ns)));
    if (page.length < 1000) break;
    last = page[page.length - 1];
  }
  for (const [ns, digests] of byNamespace) await store.quotas.replace(ns, [...digests.values()]);
  for (const ns of stale) await store.quotas.replace(ns, []);
  return byNamespace.size + stale.length;
}
