import type { FastifyBaseLogger } from 'fastify';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import type { GcUsage } from '../gc/usage.js';
import type { Quotas } from '../quotas/service.js';
import type { ParsedDigest } from '../references.js';
import type { BlobFills, ServedBlob } from './fills.js';
import type { ProxyTarget } from './namespaces.js';
import { upstreamFailure } from './refusals.js';

/*
 * Blobs of a proxy namespace that are not linked there yet: fetched once through BlobFills (one
 * upstream GET whatever the number of clients and processes), then linked into the repository, so
 * from then on the ordinary blob path serves them and GC, quotas and mounts see ordinary content.
 */

export interface BlobCacheOptions {
  metadata: MetadataStore;
  fills: BlobFills;
  quotas: Quotas;
  /** Garbage collection's queue: a filled blob no manifest references goes like an unused upload. */
  usage: GcUsage;
  log: FastifyBaseLogger;
}

export class BlobCache {
  constructor(private readonly options: BlobCacheOptions) {}

  /** The whole blob, from storage or from the one fill of it; it is linked into `repo` once committed. */
  async serve(repo: string, target: ProxyTarget, digest: ParsedDigest): Promise<ServedBlob> {
    let served: ServedBlob;
    try {
      served = await this.options.fills.serve(digest, undefined, (signal) => target.upstream.openBlob(target.remoteRepo, digest.value, signal));
    } catch (err) {
      throw upstreamFailure(err, 'BLOB_UNKNOWN');
    }
    served.whenCommitted.then(
      async () => {
        await this.link(repo, digest, served.size);
        await this.queue(digest);
      },
      // The fill's failure reaches the client as a cut-short body; the filler logs it.
      () => undefined,
    );
    return served;
  }

  // A blob pulled by digest with no manifest of it cached would otherwise stay forever; one that a
  // cached manifest references is kept by GC's own rule.
  private async queue(digest: ParsedDigest): Promise<void> {
    try {
      await this.options.usage.queueBlobs([digest.value]);
    } catch (err) {
      this.options.log.warn({ err, digest: digest.value }, 'a filled blob could not be queued for garbage collection');
    }
  }

  private async link(repo: string, digest: ParsedDigest, size: number): Promise<void> {
    const { metadata, quotas, log } = this.options;
    try {
      if (await metadata.getBlobLink(repo, digest.value)) return;
      const link = { digest: digest.value, size };
      // Counted like a mount: a full namespace gets the bytes this once but no link (the next pull fills from storage).
      await quotas.charge(repo, 'blob', link.digest, size, 'mount');
      try {
        await metadata.linkBlob(repo, link, { via: 'mount' });
      } catch (err) {
        await quotas.undoCharge(repo, 'blob', link.digest).catch(() => undefined);
        throw err;
      }
    } catch (err) {
      log.warn({ err, repository: repo, digest: digest.value }, 'a filled blob could not be linked into its proxy repository');
    }
  }
}
