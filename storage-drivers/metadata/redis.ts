import { Cluster, type Redis } from 'ioredis';
import { createRedisClient, type RedisClient, type RedisStoreOptions } from './redis-client.js';
import { RedisRetention } from './redis-retention.js';
import { RedisGc } from './redis-gc.js';
import { RedisKeys } from './redis-keys.js';
import { RedisPulls } from './redis-pulls.js';
import { CHANGED_MARK, IMMUTABLE_MARK, MISSING_MARK, SCRIPTS, type ScriptName } from './redis-scripts.js';
import { RedisQuotas } from './redis-quotas.js';
import { RedisReplication } from './redis-replication.js';
import { DEFAULT_PENDING_GRACE_MS, markPending, RedisEvents } from './redis-events.js';
import { blobLinkedDraft, blobUnlinkedDraft, eventLogMaxLength, manifestDeletedDraft, manifestPutDraft, tagDeletedDraft } from './event-records.js';
import {
  MetadataUnavailableError,
  ImmutableTagError,
  MissingReferencesError,
  TagsChangedError,
  type TagDetail,
  type BlobLink,
  type CheckedBlobLink,
  type Digest,
  type ManifestRecord,
  type MetadataStore,
  type Page,
  type PutManifestResult,
  type DeleteManifestOptions,
  type DeleteTagOptions,
  type LinkBlobOptions,
  type PutManifestOptions,
  type UnlinkBlobOptions,
  type UploadSession,
} from './types.js';

/*
 * Key layout (P = keyPrefix). Keys that change together carry the same Cluster hash tag `{…}`, so one
 * Lua script or MULTI can update them atomically even on Redis Cluster.
 *
 *   P{repo:<name>}:tags       zset, score 0, member tag            → ZRANGEBYLEX gives byte order and `last` paging
 *   P{repo:<name>}:tagmap     hash tag → digest
 *   P{repo:<name>}:tagsof     zset, score 0, "<digest> <tag>"      → the tags to drop with a manifest
 *   P{repo:<name>}:tagtime    hash tag → ms since epoch the tag was last pushed
 *   P{repo:<name>}:manifests  hash digest → ManifestRecord JSON    → presence = linked in the repository
 *   P{repo:<name>}:referrers  zset, score 0, "<subject> <digest>"
 *   P{repo:<name>}:blobs      hash digest → size
 *   P{repo:<name>}:exists     "1" once anything was linked
 *   P{repo:<name>}:refs, :untagged   garbage collection's per-repository reference sets and untag times (redis-gc.ts)
 *   P{repo:<name>}:pulls, :pulltags, :pullday:<day>, :pullbatch:<id>:<day>   pull statistics (redis-pulls.ts)
 *   P{repo:<name>}:outbox     stream: the event records of the repository's changes, XADDed by their scripts
 *                             (redis-scripts.ts), until relay moves them to the log (redis-events.ts)
 *   P{uploads}:s:<id>         hash { rev, data: UploadSession JSON }
 *   P{uploads}:age            zset, score updatedAt, member id      → expiry sweep
 *   Pcatalog                  zset, score 0, member repository     (cross-repository)
 *   P{blob:<digest>}:repos    zset, score 0, member repository     (cross-repository: the holders)
 *   P{blob:<digest>}:missing  ms since epoch: storage was found not to hold the bytes
 *   P{blob:<digest>}:touch, :gc, :pins   garbage collection's per-digest records (redis-gc.ts)
 *   P{gc}:queue, :tokens, :complete      garbage collection's queue and completeness marker
 *   P{ns:<namespace>}:…, P{quotas}:namespaces   storage quotas' per-namespace records (redis-quotas.ts)
 *   P{retention}:state                   the retention runner's cursor and last runs (redis-retention.ts)
 *   P{repl:<rule>}:state, :records, :order   a replication rule's status and artifact records (redis-replication.ts)
 *   P{events}:pending, :log, :seq, :relayed, :endpoints, :dead:<e>, :letters:<e>   the event log (redis-events.ts)
 *   P{lease:<name>}           holder, with a PX expiry
 *
 * The two cross-repository indexes live in other slots than the repository's keys, so on Cluster they
 * cannot join its transaction. They are written in a separate idempotent step, ordered so that the
 * index is never missing something the per-repository keys hold:
 *  - catalog: ZADD *before* the repository transaction. It only grows, so it is always a superset of the
 *    repositories; an entry left by a transaction that then failed names a repository without its
 *    `exists` key, and listRepositories skips such entries (the retried push makes them real).
 *  - blob → repositories (the holders): ZADD before linking a blob and before putting a manifest (for the
 *    manifest and each reference). Unlinking leaves the entry: only garbage collection removes holders,
 *    after checking each one, so the set is always a superset of the repositories that hold the digest.
 *    blobRepositories verifies each candidate against the repository's own `blobs` hash, so an entry
 *    without a link is never reported.
 *  - events pending index: a change with an event origin ZADDs its repository (score now) before its
 *    script XADDs to the outbox, in the same round trip as the writes above where there are any. relay
 *    drops a repository from it only once its outbox is empty and the score is old, and a sweep of the
 *    catalog puts back any outbox the index lost, so no record is stranded (redis-events.ts).
 * Upload sessions all share the `{uploads}` tag so the CAS and the age index change in one script.
 */

type ScriptRunner = (...args: (string | number)[]) => Promise<unknown>;

function lexAfter(last: string | undefined): string {
  return last === undefined ? '-' : `(${last}`;
}

export class RedisStore implements MetadataStore {
  readonly name = 'redis';
  readonly client: RedisClient;
  readonly gc: RedisGc;
  readonly pulls: RedisPulls;
  readonly quotas: RedisQuotas;
  readonly retention: RedisRetention;
  readonly replication: RedisReplication;
  readonly events: RedisEvents;
  private readonly keys: RedisKeys;
  /**
   * Repositories whose `exists` key this process has seen set. No script ever deletes that key, so the
   * answer cannot change: listRepositories asks Redis (one EXISTS per name, in separate slots) only about
   * catalog entries not seen yet, instead of about all 10,000 on every listing. At most one entry per
   * catalog entry.
   */
  private readonly existing = new Set<string>();
  private closed = false;

  constructor(config: RedisStoreOptions) {
    this.keys = new RedisKeys(config.keyPrefix);
    this.client = createRedisClient(config);
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      this.client.defineCommand(name, { lua: lua.source, numberOfKeys: lua.keys });
    }
    this.gc = new RedisGc({ client: this.client, keys: this.keys, run: (what, action) => this.run(what, action) });
    this.pulls = new RedisPulls({ client: this.client, keys: this.keys, run: (what, action) => this.run(what, action) });
    this.quotas = new RedisQuotas({ client: this.client, keys: this.keys, run: (what, action) => this.run(what, action) });
    this.retention = new RedisRetention({ client: this.client, keys: this.keys, run: (what, action) => this.run(what, action) });
    this.replication = new RedisReplication({ client: this.client, keys: this.keys, run: (what, action) => this.run(what, action) });
    this.events = new RedisEvents({
      client: this.client,
      keys: this.keys,
      run: (what, action) => this.run(what, action),
      maxLength: eventLogMaxLength(config.eventLogMaxLength),
      pendingGraceMs: config.eventPendingGraceMs ?? DEFAULT_PENDING_GRACE_MS,
    });
    // ioredis reports connection problems as 'error' events; calls already reject with
    // MetadataUnavailableError, so an unhandled event must not crash the process.
    this.client.on('error', () => {});
  }

  /** Resolves once connected (true), or false after `timeoutMs`; the client keeps trying either way. */
  async waitUntilReady(timeoutMs: number): Promise<boolean> {
    if (this.client.status === 'ready') return true;
    return new Promise((resolve) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        resolve(false);
      }, timeoutMs);
      this.client.once('ready', onReady);
    });
  }

  private script(name: ScriptName): ScriptRunner {
    const fn = (this.client as unknown as Record<ScriptName, ScriptRunner>)[name];
    return fn.bind(this.client);
  }

  /** Every Redis failure (down, timeout, refused) becomes MetadataUnavailableError. */
  private async run<T>(what: string, action: () => Promise<T>): Promise<T> {
    if (this.closed) throw new MetadataUnavailableError('redis metadata store is closed');
    try {
      return await action();
    } catch (err) {
      if (
        err instanceof MetadataUnavailableError ||
        err instanceof MissingReferencesError ||
        err instanceof ImmutableTagError ||
        err instanceof TagsChangedError
      )
        throw err;
      const reason = err instanceof Error ? err.message : String(err);
      throw new MetadataUnavailableError(`redis metadata store: ${what} failed: ${reason}`, { cause: err });
    }
  }

  putManifest(repo: string, manifest: ManifestRecord, tags: string[], options: PutManifestOptions = {}): Promise<PutManifestResult> {
    const { required, immutable = [], event } = options;
    return this.run('putManifest', async () => {
      const unique = [...new Set(tags)];
      const references = [...new Set(manifest.references)];
      // Holders first (see the layout comment): garbage collection must find `repo` before it holds anything.
      await Promise.all([
        this.client.zadd(this.keys.catalog(), 0, repo),
        ...[manifest.digest, ...references].map((d) => this.client.zadd(this.keys.blob(d, 'repos'), 0, repo)),
        ...(event === undefined ? [] : [markPending(this.client, this.keys, repo)]),
      ]);
      const previous = (await this.script('berthPutManifest')(
        ...this.keys.repoKeys(repo),
        manifest.digest,
        JSON.stringify(manifest),
        manifest.subject ?? '',
        String(Date.now()),
        String(manifest.createdAt),
        String(references.length),
        ...references,
        String(required?.blobs.length ?? 0),
        ...(required?.blobs ?? []),
        String(required?.manifests.length ?? 0),
        ...(required?.manifests ?? []),
        String(immutable.length),
        ...immutable,
        event === undefined ? '' : JSON.stringify(manifestPutDraft(event, repo, manifest, unique)),
        ...unique,
      )) as string[];
      if (previous[0] === IMMUTABLE_MARK) throw new ImmutableTagError(previous[1] ?? '', previous[2] ?? '');
      if (previous[0] === MISSING_MARK) throw new MissingReferencesError(previous.slice(1));
      return { previousTags: Object.fromEntries(unique.map((tag, i) => [tag, previous[i] || undefined])) };
    });
  }

  getManifest(repo: string, digest: Digest): Promise<ManifestRecord | undefined> {
    return this.run('getManifest', async () => {
      const json = await this.client.hget(this.keys.repo(repo, 'manifests'), digest);
      return json === null ? undefined : (JSON.parse(json) as ManifestRecord);
    });
  }

  getManifests(repo: string, digests: Digest[]): Promise<(ManifestRecord | undefined)[]> {
    return this.run('getManifests', async () => {
      const json = await this.hmgetBatched(this.keys.repo(repo, 'manifests'), digests);
      return json.map((j) => (j === null ? undefined : (JSON.parse(j) as ManifestRecord)));
    });
  }

  /** A tag's manifest record in one round trip (resolveTag + getManifest). */
  getTaggedManifest(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    return this.run('getTaggedManifest', async () => {
      const json = (await this.script('berthTaggedManifest')(...this.keys.repoKeys(repo), tag)) as string | null;
      return json === null ? undefined : (JSON.parse(json) as ManifestRecord);
    });
  }

  deleteManifest(repo: string, digest: Digest, options: DeleteManifestOptions = {}): Promise<string[] | undefined> {
    const { expectedTags, event } = options;
    return this.run('deleteManifest', async () => {
      const check = expectedTags === undefined ? ['0'] : ['1', ...new Set(expectedTags)];
      if (event !== undefined) await markPending(this.client, this.keys, repo);
      const record = event === undefined ? '' : JSON.stringify(manifestDeletedDraft(event, repo, digest));
      const dropped = (await this.script('berthDeleteManifest')(...this.keys.repoKeys(repo), digest, record, ...check)) as string[] | null;
      if (dropped?.[0] === CHANGED_MARK) throw new TagsChangedError(dropped.slice(1));
      return dropped ?? undefined;
    });
  }

  manifestTags(repo: string, digest: Digest): Promise<string[]> {
    return this.run('manifestTags', async () => {
      const head = `${digest} `;
      const members = await this.client.zrangebylex(this.keys.repo(repo, 'tagsof'), `[${head}`, `(${digest}!`);
      return members.map((m) => m.slice(head.length));
    });
  }

  resolveTag(repo: string, tag: string): Promise<Digest | undefined> {
    return this.run('resolveTag', async () => (await this.client.hget(this.keys.repo(repo, 'tagmap'), tag)) ?? undefined);
  }

  deleteTag(repo: string, tag: string, options: DeleteTagOptions = {}): Promise<boolean> {
    const { expected, event } = options;
    return this.run('deleteTag', async () => {
      if (event !== undefined) await markPending(this.client, this.keys, repo);
      const record = event === undefined ? '' : JSON.stringify(tagDeletedDraft(event, repo, tag));
      return (await this.script('berthDeleteTag')(...this.keys.repoKeys(repo), tag, String(Date.now()), expected ?? '', record)) === 1;
    });
  }

  listTags(repo: string, page: Page): Promise<string[]> {
    return this.run('listTags', () => this.rangeByLex(this.keys.repo(repo, 'tags'), lexAfter(page.last), '+', page.n));
  }

  /** Tags, then their digests and push times in batches (a tag removed in between is left out). */
  listTagDetails(repo: string, page: Page): Promise<TagDetail[]> {
    return this.run('listTagDetails', async () => {
      const tags = await this.rangeByLex(this.keys.repo(repo, 'tags'), lexAfter(page.last), '+', page.n);
      const details: TagDetail[] = [];
      for (let i = 0; i < tags.length; i += TAG_DETAIL_BATCH) {
        const batch = tags.slice(i, i + TAG_DETAIL_BATCH);
        const [digests, times] = await Promise.all([
          this.client.hmget(this.keys.repo(repo, 'tagmap'), ...batch),
          this.client.hmget(this.keys.repo(repo, 'tagtime'), ...batch),
        ]);
        // Tags pushed before push times were recorded: their manifest's push time.
        const untimed = [...new Set(batch.flatMap((_, j) => (digests[j] !== null && times[j] === null ? [digests[j] as string] : [])))];
        const created = new Map<string, number>();
        if (untimed.length > 0) {
          const records = await this.client.hmget(this.keys.repo(repo, 'manifests'), ...untimed);
          records.forEach((json, j) => json !== null && created.set(untimed[j] as string, (JSON.parse(json) as ManifestRecord).createdAt));
        }
        batch.forEach((tag, j) => {
          const digest = digests[j];
          if (digest === null || digest === undefined) return;
          const time = times[j];
          details.push({ tag, digest, pushedAt: time !== null && time !== undefined ? Number(time) : (created.get(digest) ?? 0) });
        });
      }
      return details;
    });
  }

  listReferrers(repo: string, subject: Digest): Promise<ManifestRecord[]> {
    return this.run('listReferrers', async () => {
      const records = (await this.script('berthReferrers')(...this.keys.repoKeys(repo), subject)) as string[];
      return records.map((json) => JSON.parse(json) as ManifestRecord);
    });
  }

  linkBlob(repo: string, link: BlobLink, options: LinkBlobOptions = {}): Promise<void> {
    const { event } = options;
    return this.run('linkBlob', async () => {
      // The catalog and holder entries first (see the layout comment), in one round trip.
      await Promise.all([
        this.client.zadd(this.keys.catalog(), 0, repo),
        this.client.zadd(this.keys.blob(link.digest, 'repos'), 0, repo),
        ...(event === undefined ? [] : [markPending(this.client, this.keys, repo)]),
      ]);
      const record = event === undefined ? '' : JSON.stringify(blobLinkedDraft(event, repo, link, options));
      await this.script('berthLinkBlob')(...this.keys.repoKeys(repo), link.digest, String(link.size), record);
    });
  }

  getBlobLink(repo: string, digest: Digest): Promise<BlobLink | undefined> {
    return this.run('getBlobLink', async () => {
      const size = await this.client.hget(this.keys.repo(repo, 'blobs'), digest);
      return size === null ? undefined : { digest, size: Number(size) };
    });
  }

  getBlobLinks(repo: string, digests: Digest[]): Promise<(BlobLink | undefined)[]> {
    return this.run('getBlobLinks', async () => {
      const sizes = await this.hmgetBatched(this.keys.repo(repo, 'blobs'), digests);
      return sizes.map((size, i) => (size === null ? undefined : { digest: digests[i] as Digest, size: Number(size) }));
    });
  }

  unlinkBlob(repo: string, digest: Digest, options: UnlinkBlobOptions = {}): Promise<boolean> {
    const { event } = options;
    return this.run('unlinkBlob', async () => {
      // The holder entry stays: only garbage collection removes holders, after checking them.
      if (event !== undefined) await markPending(this.client, this.keys, repo);
      const record = event === undefined ? '' : JSON.stringify(blobUnlinkedDraft(event, repo, digest));
      return (await this.script('berthUnlinkBlob')(...this.keys.repoKeys(repo), digest, record)) === 1;
    });
  }

  getCheckedBlobLink(repo: string, digest: Digest): Promise<CheckedBlobLink | undefined> {
    return this.run('getCheckedBlobLink', async () => {
      // Keys in two Cluster slots, so no MULTI or script: the commands are sent at once and answered
      // in the same round trip.
      const [size, missing, state] = await Promise.all([
        this.client.hget(this.keys.repo(repo, 'blobs'), digest),
        this.client.exists(this.keys.blob(digest, 'missing')),
        this.client.hget(this.keys.blob(digest, 'gc'), 'state'),
      ]);
      return size === null ? undefined : { digest, size: Number(size), missing: missing === 1, deleting: state === 'deleting' };
    });
  }

  markBlobMissing(digest: Digest): Promise<void> {
    return this.run('markBlobMissing', async () => {
      await this.client.set(this.keys.blob(digest, 'missing'), String(Date.now()));
    });
  }

  clearBlobMissing(digest: Digest): Promise<void> {
    return this.run('clearBlobMissing', async () => {
      await this.client.del(this.keys.blob(digest, 'missing'));
    });
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.run('acquireLease', async () => (await this.script('berthAcquireLease')(this.keys.lease(name), holder, Math.max(1, Math.ceil(ttlMs)))) === 1);
  }

  releaseLease(name: string, holder: string): Promise<void> {
    return this.run('releaseLease', async () => {
      await this.script('berthReleaseLease')(this.keys.lease(name), holder);
    });
  }

  blobRepositories(digest: Digest, limit: number): Promise<string[]> {
    return this.run('blobRepositories', async () => {
      if (limit <= 0) return [];
      const found: string[] = [];
      let last: string | undefined;
      // The index may hold a few entries whose link is gone; read on until `limit` verified ones.
      for (;;) {
        const batch = await this.rangeByLex(this.keys.blob(digest, 'repos'), lexAfter(last), '+', limit);
        if (batch.length === 0) return found;
        const linked = await Promise.all(batch.map((repo) => this.client.hexists(this.keys.repo(repo, 'blobs'), digest)));
        for (const [i, repo] of batch.entries()) {
          if (linked[i] === 1) found.push(repo);
          if (found.length >= limit) return found;
        }
        if (batch.length < limit) return found;
        last = batch[batch.length - 1];
      }
    });
  }

  repositoryExists(repo: string): Promise<boolean> {
    return this.run('repositoryExists', async () => {
      if (this.existing.has(repo)) return true;
      const found = (await this.client.exists(this.keys.repo(repo, 'exists'))) === 1;
      if (found) this.existing.add(repo);
      return found;
    });
  }

  listRepositories(page: Page): Promise<string[]> {
    return this.run('listRepositories', async () => {
      if (page.n === 0) return [];
      const found: string[] = [];
      let last = page.last;
      const want = page.n;
      // See the layout comment: skip catalog entries whose repository transaction never happened.
      for (;;) {
        const batch = await this.rangeByLex(this.keys.catalog(), lexAfter(last), '+', want === undefined ? undefined : want - found.length);
        if (batch.length === 0) return found;
        const unknown = batch.filter((repo) => !this.existing.has(repo));
        const exists = await Promise.all(unknown.map((repo) => this.client.exists(this.keys.repo(repo, 'exists'))));
        for (const [i, repo] of unknown.entries()) if (exists[i] === 1) this.existing.add(repo);
        for (const repo of batch) if (this.existing.has(repo)) found.push(repo);
        if (want === undefined || found.length >= want) return found;
        last = batch[batch.length - 1];
      }
    });
  }

  createUpload(session: UploadSession): Promise<void> {
    return this.run('createUpload', async () => {
      const key = this.keys.upload(session.id);
      await this.exec(
        this.client
          .multi()
          .del(key)
          .hset(key, 'rev', String(session.revision), 'data', JSON.stringify(session))
          .zadd(this.keys.uploadAge(), session.updatedAt, session.id),
      );
    });
  }

  getUpload(id: string): Promise<UploadSession | undefined> {
    return this.run('getUpload', async () => {
      const json = await this.client.hget(this.keys.upload(id), 'data');
      return json === null ? undefined : (JSON.parse(json) as UploadSession);
    });
  }

  updateUpload(id: string, expectedRevision: number, next: UploadSession): Promise<boolean> {
    return this.run('updateUpload', async () => {
      const won = await this.script('berthUpdateUpload')(
        this.keys.upload(id),
        this.keys.uploadAge(),
        String(expectedRevision),
        String(next.revision),
        JSON.stringify(next),
        next.updatedAt,
        id,
      );
      return won === 1;
    });
  }

  deleteUpload(id: string): Promise<void> {
    return this.run('deleteUpload', async () => {
      await this.exec(this.client.multi().del(this.keys.upload(id)).zrem(this.keys.uploadAge(), id));
    });
  }

  listStaleUploads(updatedBefore: number, limit: number): Promise<UploadSession[]> {
    return this.run('listStaleUploads', async () => {
      if (limit <= 0) return [];
      const ids = await this.client.zrangebyscore(this.keys.uploadAge(), '-inf', `(${updatedBefore}`, 'LIMIT', 0, limit);
      const sessions = await Promise.all(ids.map((id) => this.client.hget(this.keys.upload(id), 'data')));
      return sessions.filter((json): json is string => json !== null).map((json) => JSON.parse(json) as UploadSession);
    });
  }

  ping(): Promise<void> {
    return this.run('ping', async () => {
      await this.client.ping();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // QUIT only over a live connection; otherwise just stop the reconnect loop.
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
      } catch {
        // Lost in between: nothing to say goodbye to.
      }
    }
    this.client.disconnect();
  }

  private async rangeByLex(key: string, min: string, max: string, n: number | undefined): Promise<string[]> {
    if (n === undefined) return this.client.zrangebylex(key, min, max);
    if (n <= 0) return [];
    return this.client.zrangebylex(key, min, max, 'LIMIT', 0, n);
  }

  /** HMGET of many fields, TAG_DETAIL_BATCH per command, sent at once (one key: one slot). */
  private async hmgetBatched(key: string, fields: string[]): Promise<(string | null)[]> {
    const batches: Promise<(string | null)[]>[] = [];
    for (let i = 0; i < fields.length; i += TAG_DETAIL_BATCH) batches.push(this.client.hmget(key, ...fields.slice(i, i + TAG_DETAIL_BATCH)));
    return (await Promise.all(batches)).flat();
  }

  private async exec(multi: ReturnType<RedisClient['multi']>): Promise<void> {
    const results = await multi.exec();
    if (results === null) throw new Error('transaction aborted');
    for (const [err] of results) if (err) throw err;
  }
}

/**
 * A start-up warning when the Redis behind `store` keeps nothing on disk (no AOF, no RDB snapshots):
 * a restart would then lose every tag. Undefined when persistence is on, the store is not Redis, or
 * CONFIG is disabled (managed services): we cannot tell, and say nothing.
 */
/** Tags per HMGET in listTagDetails: large enough to need few round trips, small enough not to block Redis. */
const TAG_DETAIL_BATCH = 1000;

export async function warnIfEphemeral(store: MetadataStore): Promise<string | undefined> {
  if (!(store instanceof RedisStore)) return undefined;
  const nodes: Redis[] = store.client instanceof Cluster ? store.client.nodes('master') : [store.client];
  const ephemeral: string[] = [];
  for (const node of nodes) {
    try {
      const aof = (await node.config('GET', 'appendonly')) as string[];
      const save = (await node.config('GET', 'save')) as string[];
      if (aof[1] === 'no' && (save[1] ?? '').trim() === '') ephemeral.push(`${node.options.host}:${node.options.port}`);
    } catch {
      return undefined;
    }
  }
  if (ephemeral.length === 0) return undefined;
  return (
    `Redis at ${ephemeral.join(', ')} keeps nothing on disk (appendonly no, save ""): ` +
    'a Redis restart loses every tag and manifest link. Turn on AOF (appendonly yes) or RDB snapshots.'
  );
}
