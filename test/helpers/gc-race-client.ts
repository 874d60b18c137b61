// The race harness's registry client: every request goes to the next of the processes in turn, and
// pushes behave as docker's do (HEAD a blob first and skip it on 200; mount from another repository
// and upload when the mount is refused). The answers GC may legitimately give a push in the race —
// MANIFEST_BLOB_UNKNOWN, BLOB_UNKNOWN, 503 — become RetryableError, so the caller pushes again.
import { OCI_INDEX, OCI_MANIFEST, type Blob } from './oci.js';

export const MANIFEST_ACCEPT = `${OCI_MANIFEST}, ${OCI_INDEX}`;

/** What the pushers did, summed over all of them. */
export interface PushStats {
  /** Manifests that went in (images, index children, indexes, referrers, tag moves). */
  manifestPuts: number;
  blobUploads: number;
  /** HEADs that found the blob, so its upload was skipped. */
  headSkips: number;
  mounts: number;
  /** Mounts the registry refused (202: the source no longer had the blob), followed by an upload. */
  mountFallbacks: number;
  manifestDeletes: number;
  tagDeletes: number;
  /** Attempts that failed with an answer GC may give, by answer; each was pushed again. */
  retries: Record<string, number>;
  /** How many pushes needed how many attempts (1: no retry). */
  attempts: Record<number, number>;
  /** The first few pushes that needed three attempts or more, with why each attempt failed. */
  hardest: string[];
}

export function emptyPushStats(): PushStats {
  return {
    manifestPuts: 0,
    blobUploads: 0,
    headSkips: 0,
    mounts: 0,
    mountFallbacks: 0,
    manifestDeletes: 0,
    tagDeletes: 0,
    retries: {},
    attempts: {},
    hardest: [],
  };
}

/** An answer a client is expected to meet while GC runs: push again. */
export class RetryableError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'RetryableError';
  }
}

async function failure(what: string, res: Response): Promise<Error> {
  const body = await res.text();
  let code = '';
  try {
    code = (JSON.parse(body) as { errors?: { code?: string }[] }).errors?.[0]?.code ?? '';
  } catch {
    // not an OCI error body
  }
  const message = `${what}: HTTP ${res.status} ${code} ${body.slice(0, 300)}`;
  if (res.status === 503) return new RetryableError('503', message);
  if (code === 'MANIFEST_BLOB_UNKNOWN' || code === 'BLOB_UNKNOWN') return new RetryableError(code, message);
  return new Error(message);
}

export class RaceClient {
  private turn: number;

  constructor(
    private readonly urls: readonly string[],
    first: number,
    readonly stats: PushStats,
  ) {
    this.turn = first;
  }

  /** One request to the next process in turn. */
  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const base = this.urls[this.turn++ % this.urls.length] as string;
    return fetch(`${base}${path}`, init);
  }

  /** Makes `blob` available in `repo`: mounted from `mountFrom` when given, else HEAD and upload on 404. */
  async ensureBlob(repo: string, b: Blob, mountFrom?: string): Promise<void> {
    if (mountFrom !== undefined) {
      const res = await this.fetch(`/v2/${repo}/blobs/uploads/?mount=${b.digest}&from=${mountFrom}`, { method: 'POST' });
      if (res.status === 201) {
        await res.arrayBuffer();
        this.stats.mounts++;
        return;
      }
      if (res.status !== 202) throw await failure(`mount ${b.digest} into ${repo} from ${mountFrom}`, res);
      await res.arrayBuffer();
      this.stats.mountFallbacks++;
      const location = res.headers.get('location');
      if (!location) throw new Error(`mount fallback for ${b.digest}: no Location`);
      const sep = location.includes('?') ? '&' : '?';
      const put = await this.fetch(`${location}${sep}digest=${b.digest}`, {
        method: 'PUT',
        body: b.data,
        headers: { 'Content-Type': 'application/octet-stream' },
      });
      if (put.status !== 201) throw await failure(`upload ${b.digest} to ${repo} after a refused mount`, put);
      await put.arrayBuffer();
      this.stats.blobUploads++;
      return;
    }
    const head = await this.fetch(`/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' });
    if (head.status === 200) {
      this.stats.headSkips++;
      return;
    }
    if (head.status !== 404) throw await failure(`HEAD ${b.digest} in ${repo}`, head);
    await this.upload(repo, b);
  }

  /**
   * Makes all of `blobs` available in `repo` at once, as docker pushes layers in parallel (it keeps
   * the time between the first upload and the manifest short); `mounts` names a source repository
   * per digest. Waits for every request before it reports the first failure.
   */
  async ensureBlobs(repo: string, blobs: Blob[], mounts: ReadonlyMap<string, string> = new Map()): Promise<void> {
    const results = await Promise.allSettled(blobs.map((b) => this.ensureBlob(repo, b, mounts.get(b.digest))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** A monolithic upload (POST with the digest and the bytes). */
  async upload(repo: string, b: Blob): Promise<void> {
    const res = await this.fetch(`/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
      method: 'POST',
      body: b.data,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    if (res.status !== 201) throw await failure(`upload ${b.digest} to ${repo}`, res);
    await res.arrayBuffer();
    this.stats.blobUploads++;
  }

  async putManifest(repo: string, reference: string, m: Blob, mediaType: string): Promise<void> {
    const res = await this.fetch(`/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: m.data, headers: { 'Content-Type': mediaType } });
    if (res.status !== 201) throw await failure(`PUT manifest ${repo}:${reference}`, res);
    await res.arrayBuffer();
    this.stats.manifestPuts++;
  }

  /** DELETE of a manifest by digest or of a tag; anything but 202 is an error (the caller's model says it is there). */
  async deleteManifest(repo: string, reference: string): Promise<void> {
    const res = await this.fetch(`/v2/${repo}/manifests/${reference}`, { method: 'DELETE' });
    if (res.status !== 202) throw await failure(`DELETE ${repo}:${reference}`, res);
    await res.arrayBuffer();
    if (reference.includes(':')) this.stats.manifestDeletes++;
    else this.stats.tagDeletes++;
  }

  /**
   * Runs `push` until it succeeds, at most `maxAttempts` times; an attempt may only fail with a
   * RetryableError (anything else is thrown at once). Each attempt starts from the HEADs again, so
   * whatever GC took in between is uploaded again.
   */
  async withRetries(what: string, maxAttempts: number, push: (attempt: number) => Promise<void>): Promise<void> {
    const reasons: string[] = [];
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      try {
        await push(attempt);
        this.stats.attempts[attempt] = (this.stats.attempts[attempt] ?? 0) + 1;
        if (attempt >= 3 && this.stats.hardest.length < 5) this.stats.hardest.push(`${what} (${attempt} attempts): ${reasons.join(' | ')}`);
        return;
      } catch (err) {
        if (!(err instanceof RetryableError)) throw err;
        this.stats.retries[err.reason] = (this.stats.retries[err.reason] ?? 0) + 1;
        reasons.push(err.message);
      }
    }
    throw new Error(`${what} did not succeed in ${maxAttempts} attempts:\n${reasons.join('\n')}`);
  }
}
