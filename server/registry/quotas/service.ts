// The request paths' side of storage quotas: where content becomes new to a namespace (an upload's
// bytes as they stream, its finish, a mount, a manifest PUT) the namespace's record is charged, in
// one atomic step that also checks the limit, BEFORE the repository link is made.
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { holderOf, type NamespaceUsage } from '../../../storage-drivers/metadata/quota-types.js';
import { OciError } from '../../errors.js';
import type { QuotaConfig } from './config.js';
import { formatSize, limitFor, namespaceOf, type AppliedLimit } from './rules.js';

/** Where a push was refused (the refusals metric's label). */
export type QuotaStage = 'start' | 'stream' | 'finish' | 'mount' | 'manifest';

export interface QuotaOptions {
  now: () => number;
  /** A push refused for its namespace's quota (metrics). */
  onRefused?: ((stage: QuotaStage, ns: string) => void) | undefined;
}

/** An upload crossed its namespace's limit while streaming: the session is ended and its bytes freed. */
export class QuotaStreamRefusal extends Error {
  constructor(readonly error: OciError) {
    super(error.message);
    this.name = 'QuotaStreamRefusal';
  }
}

/** 403 DENIED, naming the namespace, its limit, its usage and the rule; what to do next. */
export function quotaError(ns: string, applied: AppliedLimit, usage: NamespaceUsage, needs?: { what: string; bytes: number }): OciError {
  const inFlight = usage.reserved > 0 ? ` (and ${formatSize(usage.reserved)} in uploads in progress)` : '';
  const need = needs ? `; this ${needs.what} needs ${formatSize(needs.bytes)} more` : '';
  return new OciError(
    'DENIED',
    `namespace ${ns} is over its storage quota: ${formatSize(usage.bytes)} used of ${formatSize(applied.limitBytes)}${inFlight} (rule ${applied.rule})${need}; ` +
      'delete images or ask an administrator',
  );
}

export class Quotas {
  constructor(
    private readonly metadata: MetadataStore,
    readonly config: QuotaConfig,
    private readonly options: QuotaOptions,
  ) {}

  now(): number {
    return this.options.now();
  }

  limitOf(ns: string): AppliedLimit | undefined {
    return limitFor(this.config.rules, ns);
  }

  refused(stage: QuotaStage, ns: string, applied: AppliedLimit, usage: NamespaceUsage, needs?: { what: string; bytes: number }): OciError {
    this.options.onRefused?.(stage, ns);
    return quotaError(ns, applied, usage, needs);
  }

  /** An upload may start unless its namespace is already at or over its limit. */
  async assertRoomToStart(repo: string): Promise<void> {
    const ns = namespaceOf(repo);
    const applied = this.limitOf(ns);
    if (applied === undefined) return;
    const usage = await this.metadata.quotas.usage(ns, this.now());
    if (usage.bytes + usage.reserved >= applied.limitBytes) throw this.refused('start', ns, applied, usage);
  }

  /**
   * Counts `digest` in the repository's namespace as held by its blob link or manifest (a no-op when
   * the namespace already holds it); refused with 403 when it is new and does not fit. With
   * `reservation`, that reservation (the upload's streamed bytes) ends in the same step.
   */
  async charge(
    repo: string,
    kind: 'blob' | 'manifest',
    digest: string,
    size: number,
    stage: Exclude<QuotaStage, 'start' | 'stream'>,
    reservation?: string,
  ): Promise<void> {
    const ns = namespaceOf(repo);
    const applied = this.limitOf(ns);
    const result = await this.metadata.quotas.charge(ns, digest, size, holderOf(kind, repo), {
      limit: applied?.limitBytes,
      reservation,
      now: this.now(),
    });
    if (!result.ok && applied) throw this.refused(stage, ns, applied, result.usage, { what: kind === 'blob' ? 'blob' : 'manifest', bytes: size });
  }

  /**
   * After a charge whose link then failed: take the holder back out, unless the link is there after
   * all (a concurrent push of the same content made it).
   */
  async undoCharge(repo: string, kind: 'blob' | 'manifest', digest: string): Promise<void> {
    await releaseHolder(this.metadata, repo, kind, digest);
  }

  /**
   * Grows upload `id`'s reservation to cover `need` bytes, checked against the limit in the same
   * step. A declared length is reserved whole at the first byte: concurrent uploads growing step by
   * step could each hold part of the room and all be refused, where whole reservations let those
   * that fit finish. Without a length it grows a step ahead, and near the limit by exactly what
   * arrived, so only bytes that really do not fit are refused. Returns the bytes now reserved.
   */
  async reserveFor(repo: string, id: string, need: number, expected: number | undefined): Promise<number> {
    const ns = namespaceOf(repo);
    const applied = this.limitOf(ns);
    if (applied === undefined) return Number.POSITIVE_INFINITY;
    const tries = expected !== undefined && expected >= need ? [expected] : [need + this.config.reserveStepBytes, need];
    for (const [i, bytes] of tries.entries()) {
      const result = await this.metadata.quotas.reserve(ns, id, bytes, { limit: applied.limitBytes, until: this.until(), now: this.now() });
      if (result.ok) return bytes;
      if (i === tries.length - 1) throw new QuotaStreamRefusal(this.refused('stream', ns, applied, result.usage, { what: 'upload', bytes }));
    }
    throw new Error('unreachable');
  }

  /** Extends the reservation's expiry while its upload runs (never refused: its bytes were admitted). */
  async renew(repo: string, id: string, bytes: number): Promise<void> {
    await this.metadata.quotas.reserve(namespaceOf(repo), id, bytes, { until: this.until(), now: this.now() });
  }

  private until(): number {
    return this.now() + this.config.reservationSeconds * 1000;
  }

  async unreserve(repo: string, id: string): Promise<void> {
    await this.metadata.quotas.unreserve(namespaceOf(repo), id);
  }
}

/**
 * Takes a repository's holder of `digest` out of its namespace once the link is gone, then checks
 * the link is still gone: a push that re-linked the same content in between charged a holder this
 * release just removed, and is charged again (never a limit here: its bytes were admitted).
 */
export async function releaseHolder(metadata: MetadataStore, repo: string, kind: 'blob' | 'manifest', digest: string): Promise<void> {
  const ns = namespaceOf(repo);
  const holder = holderOf(kind, repo);
  await metadata.quotas.release(ns, digest, holder);
  const back = kind === 'blob' ? await metadata.getBlobLink(repo, digest) : await metadata.getManifest(repo, digest);
  if (back !== undefined) await metadata.quotas.charge(ns, digest, back.size, holder, { now: Date.now() });
}
