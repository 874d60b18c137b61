import type http from 'node:http';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { MEDIA_TYPES, parseManifest, type Descriptor } from '../manifest-parse.js';
import { MAX_MANIFEST_BYTES } from '../proxy/upstream.js';
import { BodyLimitError, discard, readBody, TransportError } from '../proxy/upstream-http.js';
import { isDigest, parseDigest, type ParsedDigest } from '../references.js';
import type {
  BlobBody,
  DeleteTagResult,
  FetchedManifest,
  ManifestRef,
  OpenBlobAt,
  PutBlobOptions,
  PutBlobResult,
  ReferrerRef,
  ReplicationEndpoint,
} from './endpoint.js';
import { ReplicationError } from './errors.js';
import type { ResolvedRegistry } from './registries.js';
import { firstHeader, RegistrySession, type SessionAnswer, type SessionOptions, type SessionRequest } from './session.js';
import { digestOf, embeddedMediaType, mediaTypeOf, parseDigestOrUndefined } from '../remote-registry-http.js';

/*
 * Another OCI registry (Berth, distribution, Harbor, ACR, …) as one side of a replication rule, over
 * the distribution API. Manifests are checked against their digest on the way in; blobs go up in
 * chunks, and a chunk that fails is resumed from the offset the registry says it holds.
 */

const ACCEPT = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifest, MEDIA_TYPES.dockerList, MEDIA_TYPES.ociArtifact].join(', ');
const PAGE = 1000;
/** Failed chunks in a row (no progress in between) before an upload gives up. */
const MAX_CHUNK_RETRIES = 5;
/** Uploads started over after the registry lost or refused one (416, unknown upload). */
const MAX_RESTARTS = 2;
const BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 8000;

const pull = (repo: string) => `repository:${repo}:pull`;
const push = (repo: string) => `repository:${repo}:pull,push`;

/** The registry lost the upload or disagrees on where it stands: start a new one. */
class UploadRestart extends Error {}

export interface RemoteOptions extends SessionOptions {
  /** The first wait before a failed chunk is retried (doubling, at most 8 s); default 250 ms. */
  backoffMs?: number | undefined;
}

export class RemoteEndpoint implements ReplicationEndpoint {
  readonly name: string;
  private readonly session: RegistrySession;
  private readonly backoffMs: number;

  constructor(config: ResolvedRegistry, options: RemoteOptions = {}) {
    this.name = config.name;
    this.session = new RegistrySession(config, options);
    this.backoffMs = options.backoffMs ?? BACKOFF_MS;
  }

  async *repositories(signal: AbortSignal): AsyncIterable<string> {
    const req = { method: 'GET', scope: 'registry:catalog:*', repo: undefined, operation: 'list repositories (catalog)' } as const;
    for await (const page of this.pages({ ...req, path: `/v2/_catalog?n=${PAGE}` }, signal, (status, said) => {
      if (status === 404 || status === 401 || status === 403 || said.includes('UNSUPPORTED'))
        return new Error(`registry ${this.name} lists no catalog (${status}${said}): replication rules for it must name repositories exactly, not by pattern`);
      return undefined;
    })) {
      const names = (page as { repositories?: unknown }).repositories;
      if (names === undefined || names === null) continue;
      if (!Array.isArray(names) || !names.every((n) => typeof n === 'string'))
        throw this.invalid(undefined, 'list repositories', 'the catalog is not a list of names');
      yield* names as string[];
    }
  }

  async tags(repo: string, signal: AbortSignal): Promise<string[] | undefined> {
    const out: string[] = [];
    let missing = false;
    const req = { method: 'GET', scope: pull(repo), repo, operation: 'list tags' } as const;
    for await (const page of this.pages({ ...req, path: `/v2/${repo}/tags/list?n=${PAGE}` }, signal, (status) => {
      if (status === 404) missing = true;
      return undefined;
    })) {
      const tags = (page as { tags?: unknown }).tags;
      if (tags === undefined || tags === null) continue;
      if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw this.invalid(repo, 'list tags', 'the tag list is not a list of names');
      out.push(...(tags as string[]));
    }
    return missing ? undefined : out;
  }

  async headManifest(repo: string, reference: string, signal: AbortSignal): Promise<ManifestRef | undefined> {
    const req: SessionRequest = {
      method: 'HEAD',
      path: `/v2/${repo}/manifests/${reference}`,
      scope: pull(repo),
      headers: { Accept: ACCEPT },
      repo,
      operation: `HEAD manifest ${reference}`,
    };
    const { res } = await this.session.request(req, signal);
    const status = res.statusCode ?? 0;
    if (status === 404) {
      discard(res, true);
      return undefined;
    }
    if (status !== 200) throw await this.session.failure(req, res);
    discard(res, true);
    const header = firstHeader(res.headers['docker-content-digest']);
    const mediaType = mediaTypeOf(res);
    const size = Number(res.headers['content-length'] ?? 'NaN');
    const digest = header === undefined ? undefined : parseDigestOrUndefined(header)?.value;
    // Some registries leave these out of HEAD answers (or say them wrong); the manifest itself says them all.
    if (digest === undefined || mediaType === undefined || !Number.isSafeInteger(size) || (isDigest(reference) && digest !== reference)) {
      const manifest = await this.getManifest(repo, reference, signal);
      return manifest && { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size };
    }
    return { digest, mediaType, size };
  }

  async getManifest(repo: string, reference: string, signal: AbortSignal): Promise<FetchedManifest | undefined> {
    const operation = `GET manifest ${reference}`;
    const req: SessionRequest = { method: 'GET', path: `/v2/${repo}/manifests/${reference}`, scope: pull(repo), headers: { Accept: ACCEPT }, repo, operation };
    const { res } = await this.session.request(req, signal);
    const status = res.statusCode ?? 0;
    if (status === 404) {
      discard(res);
      return undefined;
    }
    if (status !== 200) throw await this.session.failure(req, res);
    const bytes = await this.readAll(res, MAX_MANIFEST_BYTES, repo, operation);
    const asked = isDigest(reference) ? parseDigest(reference) : undefined;
    const digest = digestOf(asked?.algorithm ?? 'sha256', bytes);
    if (asked !== undefined && digest !== asked.value) throw this.invalid(repo, operation, `the manifest sent has digest ${digest}`);
    const header = firstHeader(res.headers['docker-content-digest']);
    if (header !== undefined) {
      const claimed = parseDigestOrUndefined(header);
      if (claimed === undefined || digestOf(claimed.algorithm, bytes) !== claimed.value)
        throw this.invalid(repo, operation, `the manifest sent does not match its Docker-Content-Digest ${JSON.stringify(header.slice(0, 200))}`);
    }
    const mediaType = mediaTypeOf(res) ?? embeddedMediaType(bytes);
    if (mediaType === undefined) throw this.invalid(repo, operation, 'the manifest has no Content-Type and no mediaType field');
    return { digest, mediaType, size: bytes.length, bytes };
  }

  async referrers(repo: string, digest: string, signal: AbortSignal): Promise<ReferrerRef[]> {
    const subject = parseDigest(digest);
    const out: ReferrerRef[] = [];
    let fallback = false;
    const req = { method: 'GET', scope: pull(repo), repo, operation: `list referrers of ${digest}` } as const;
    for await (const page of this.pages({ ...req, path: `/v2/${repo}/referrers/${digest}` }, signal, (status, said) => {
      // A registry with the referrers API never answers it 404 (OCI distribution 1.1), except for a repository it does not have.
      if (status === 404 && !said.includes('NAME_UNKNOWN')) fallback = true;
      return undefined;
    }))
      out.push(...this.descriptors(page, repo, req.operation));
    if (!fallback) return out;
    const index = await this.getManifest(repo, `${subject.algorithm}-${subject.hex}`, signal);
    if (index === undefined) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(index.bytes.toString('utf8'));
    } catch {
      throw this.invalid(repo, `list referrers of ${digest} (tag schema)`, 'the referrers tag is not JSON');
    }
    return this.descriptors(parsed, repo, `list referrers of ${digest} (tag schema)`);
  }

  async hasBlob(repo: string, digest: string, signal: AbortSignal): Promise<boolean> {
    parseDigest(digest);
    const req: SessionRequest = { method: 'HEAD', path: `/v2/${repo}/blobs/${digest}`, scope: pull(repo), repo, operation: `HEAD blob ${digest}` };
    const { res } = await this.session.request(req, signal);
    const status = res.statusCode ?? 0;
    if (status === 200 || status === 404) {
      discard(res, true);
      return status === 200;
    }
    throw await this.session.failure(req, res);
  }

  async openBlob(repo: string, digest: string, offset: number, signal: AbortSignal): Promise<BlobBody> {
    parseDigest(digest);
    const operation = `GET blob ${digest}${offset > 0 ? ` from byte ${offset}` : ''}`;
    const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
    const req: SessionRequest = { method: 'GET', path: `/v2/${repo}/blobs/${digest}`, scope: pull(repo), headers, repo, operation };
    const { res } = await this.session.request(req, signal);
    const status = res.statusCode ?? 0;
    if (status !== 200 && status !== 206) throw await this.session.failure(req, res);
    const length = Number(res.headers['content-length'] ?? 'NaN');
    const total = /\/(\d+)\s*$/.exec(res.headers['content-range'] ?? '')?.[1];
    const size = status === 206 && total !== undefined ? Number(total) : length + (status === 206 ? offset : 0);
    if (!Number.isSafeInteger(size) || size < 0) {
      res.destroy();
      throw this.invalid(repo, operation, 'the blob came without a Content-Length');
    }
    // A registry that ignores Range sends it all: the bytes before `offset` are dropped here.
    return { size, stream: status === 200 && offset > 0 ? Readable.from(skipBytes(res, offset)) : res };
  }

  async putBlob(repo: string, digest: string, size: number, open: OpenBlobAt, options: PutBlobOptions): Promise<PutBlobResult> {
    parseDigest(digest);
    const { signal } = options;
    if (await this.hasBlob(repo, digest, signal)) return 'present';
    let session: URL | undefined;
    for (const from of options.mountFrom ?? []) {
      if (from === repo) continue;
      const req: SessionRequest = {
        method: 'POST',
        path: `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
        scope: `${push(repo)} ${pull(from)}`,
        body: Buffer.alloc(0),
        repo,
        operation: `mount blob ${digest} from ${from}`,
      };
      const answer = await this.session.request(req, signal);
      const status = answer.res.statusCode ?? 0;
      discard(answer.res);
      if (status === 201) return 'mounted';
      if (status === 202) {
        // The registry could not mount and opened an upload instead (the spec's answer): use it.
        session = this.location(answer, repo, req.operation);
        break;
      }
      // Refused (no pull on the source, a mount across namespaces): the next source, or an upload.
    }
    await this.upload(repo, digest, size, open, options, session);
    return 'uploaded';
  }

  async putManifest(repo: string, reference: string, manifest: FetchedManifest, signal: AbortSignal): Promise<void> {
    const req: SessionRequest = {
      method: 'PUT',
      path: `/v2/${repo}/manifests/${reference}`,
      scope: push(repo),
      headers: { 'Content-Type': manifest.mediaType },
      body: manifest.bytes,
      repo,
      operation: `PUT manifest ${reference}`,
    };
    const { res } = await this.session.request(req, signal);
    if (res.statusCode !== 201 && res.statusCode !== 200) throw await this.session.failure(req, res);
    discard(res);
    const header = firstHeader(res.headers['docker-content-digest']);
    if (header !== undefined && header.trim() !== manifest.digest)
      throw this.invalid(repo, req.operation, `the registry stored it as ${JSON.stringify(header.slice(0, 200))}, not ${manifest.digest}`);
    const subject = subjectOf(manifest);
    // A registry with the referrers API says so with OCI-Subject; without it, the pusher keeps the
    // subject's `<alg>-<hex>` tag index (OCI distribution 1.1), or nobody finds the referrer there.
    if (subject !== undefined && res.headers['oci-subject'] === undefined) await this.addToReferrersTag(repo, subject, manifest, signal);
  }

  /** Adds `referrer` to the tag schema's index of `subject` in `repo`, unless it is listed there. */
  private async addToReferrersTag(repo: string, subject: ParsedDigest, referrer: FetchedManifest, signal: AbortSignal): Promise<void> {
    const tag = `${subject.algorithm}-${subject.hex}`;
    const operation = `update referrers tag ${tag}`;
    const current = await this.getManifest(repo, tag, signal);
    let index: { manifests?: unknown } & Record<string, unknown> = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] };
    if (current !== undefined) {
      try {
        index = JSON.parse(current.bytes.toString('utf8')) as typeof index;
      } catch {
        throw this.invalid(repo, operation, 'the referrers tag is not JSON');
      }
      if (!Array.isArray(index.manifests)) throw this.invalid(repo, operation, 'the referrers tag is not an index');
    }
    const listed = index.manifests as unknown[];
    if (listed.some((d) => typeof d === 'object' && d !== null && (d as { digest?: unknown }).digest === referrer.digest)) return;
    const bytes = Buffer.from(JSON.stringify({ ...index, manifests: [...listed, referrerDescriptor(referrer)] }));
    const req: SessionRequest = {
      method: 'PUT',
      path: `/v2/${repo}/manifests/${tag}`,
      scope: push(repo),
      headers: { 'Content-Type': MEDIA_TYPES.ociIndex },
      body: bytes,
      repo,
      operation,
    };
    const { res } = await this.session.request(req, signal);
    if (res.statusCode !== 201 && res.statusCode !== 200) throw await this.session.failure(req, res);
    discard(res);
  }

  async deleteTag(repo: string, tag: string, signal: AbortSignal): Promise<DeleteTagResult> {
    const req: SessionRequest = {
      method: 'DELETE',
      path: `/v2/${repo}/manifests/${tag}`,
      scope: `repository:${repo}:delete`,
      repo,
      operation: `delete tag ${tag}`,
    };
    const { res } = await this.session.request(req, signal);
    const status = res.statusCode ?? 0;
    if (status === 202 || status === 200 || status === 204) {
      discard(res);
      return 'deleted';
    }
    if (status === 404) {
      discard(res);
      return 'absent';
    }
    if (status === 405) {
      discard(res);
      return 'unsupported';
    }
    if (status === 400) {
      const body = await readBody(res, 16 * 1024).catch(() => Buffer.alloc(0));
      const text = body.toString('utf8');
      // distribution 2.x takes the tag for a malformed digest: it deletes by digest only.
      if (text.includes('UNSUPPORTED') || text.includes('DIGEST_INVALID')) return 'unsupported';
      throw new ReplicationError({ registry: this.name, repo, operation: req.operation, status, said: text.slice(0, 200), retryable: false });
    }
    throw await this.session.failure(req, res);
  }

  async deleteManifest(repo: string, digest: string, signal: AbortSignal): Promise<boolean> {
    parseDigest(digest);
    const req: SessionRequest = {
      method: 'DELETE',
      path: `/v2/${repo}/manifests/${digest}`,
      scope: `repository:${repo}:delete`,
      repo,
      operation: `delete manifest ${digest}`,
    };
    const { res } = await this.session.request(req, signal);
    const status = res.statusCode ?? 0;
    if (status === 202 || status === 200 || status === 204 || status === 404) {
      discard(res);
      return status !== 404;
    }
    throw await this.session.failure(req, res);
  }

  close(): void {
    this.session.close();
  }

  /** The chunked upload, resumed from the offset the registry reports after a failed chunk. */
  private async upload(repo: string, digest: string, size: number, open: OpenBlobAt, options: PutBlobOptions, opened: URL | undefined): Promise<void> {
    const { signal } = options;
    const chunkBytes = Math.max(1, options.chunkBytes);
    let location = opened ?? (await this.startUpload(repo, digest, signal));
    let offset = 0;
    let failures = 0;
    let restarts = 0;
    let source: ChunkReader | undefined;
    try {
      for (;;) {
        try {
          while (offset < size) {
            source ??= new ChunkReader(await open(offset, signal));
            const chunk = await source.read(Math.min(chunkBytes, size - offset));
            if (chunk.length === 0) throw new Error(`the source of blob ${digest} ended at byte ${offset} of ${size}`);
            location = await this.patch(repo, digest, location, chunk, offset, signal);
            offset += chunk.length;
            failures = 0;
          }
          await this.finish(repo, digest, location, signal);
          return;
        } catch (err) {
          source?.destroy();
          source = undefined;
          if (signal.aborted) throw err;
          if (err instanceof UploadRestart) {
            if (++restarts > MAX_RESTARTS) throw this.invalid(repo, `put blob ${digest}`, `the registry lost or refused the upload ${restarts} times`);
            location = await this.startUpload(repo, digest, signal);
            offset = 0;
            continue;
          }
          if (!isRetryable(err) || ++failures > MAX_CHUNK_RETRIES) throw err;
          let status: { location: URL; offset: number } | undefined;
          for (;;) {
            await sleep(Math.min(MAX_BACKOFF_MS, this.backoffMs * 2 ** (failures - 1)), undefined, { signal });
            try {
              status = await this.uploadStatus(repo, digest, location, signal);
              break;
            } catch (again) {
              if (signal.aborted || !isRetryable(again) || ++failures > MAX_CHUNK_RETRIES) throw again;
            }
          }
          if (status === undefined) {
            // The upload is gone: finished after all (the answer to the last PUT was lost), or dropped.
            if (offset >= size && (await this.hasBlob(repo, digest, signal))) return;
            if (++restarts > MAX_RESTARTS) throw err;
            location = await this.startUpload(repo, digest, signal);
            offset = 0;
          } else ({ location, offset } = status);
        }
      }
    } finally {
      source?.destroy();
    }
  }

  private async startUpload(repo: string, digest: string, signal: AbortSignal): Promise<URL> {
    const req: SessionRequest = {
      method: 'POST',
      path: `/v2/${repo}/blobs/uploads/`,
      scope: push(repo),
      body: Buffer.alloc(0),
      repo,
      operation: `start upload of blob ${digest}`,
    };
    const answer = await this.session.request(req, signal);
    if (answer.res.statusCode !== 202) throw await this.session.failure(req, answer.res);
    discard(answer.res);
    return this.location(answer, repo, req.operation);
  }

  private async patch(repo: string, digest: string, location: URL, chunk: Buffer, offset: number, signal: AbortSignal): Promise<URL> {
    const req: SessionRequest = {
      method: 'PATCH',
      url: location,
      scope: push(repo),
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
      body: chunk,
      repo,
      operation: `upload blob ${digest} bytes ${offset}-${offset + chunk.length - 1}`,
    };
    const answer = await this.session.request(req, signal);
    const status = answer.res.statusCode ?? 0;
    if (status === 416 || status === 404) {
      discard(answer.res);
      throw new UploadRestart();
    }
    if (status !== 202) throw await this.session.failure(req, answer.res);
    discard(answer.res);
    return this.location(answer, repo, req.operation);
  }

  private async finish(repo: string, digest: string, location: URL, signal: AbortSignal): Promise<void> {
    const url = new URL(location);
    url.searchParams.set('digest', digest);
    const req: SessionRequest = { method: 'PUT', url, scope: push(repo), body: Buffer.alloc(0), repo, operation: `finish upload of blob ${digest}` };
    const { res } = await this.session.request(req, signal);
    if (res.statusCode !== 201) throw await this.session.failure(req, res);
    discard(res);
    const header = firstHeader(res.headers['docker-content-digest']);
    if (header !== undefined && header.trim() !== digest)
      throw this.invalid(repo, req.operation, `the registry stored it as ${JSON.stringify(header.slice(0, 200))}`);
  }

  /** Where an upload stands: its next offset and Location, or undefined when the registry no longer knows it. */
  private async uploadStatus(repo: string, digest: string, location: URL, signal: AbortSignal): Promise<{ location: URL; offset: number } | undefined> {
    const req: SessionRequest = { method: 'GET', url: location, scope: push(repo), repo, operation: `status of upload of blob ${digest}` };
    const answer = await this.session.request(req, signal);
    const status = answer.res.statusCode ?? 0;
    if (status === 404) {
      discard(answer.res);
      return undefined;
    }
    if (status !== 204 && status !== 200) throw await this.session.failure(req, answer.res);
    discard(answer.res);
    const range = /^(?:bytes=)?0-(\d+)$/.exec((answer.res.headers.range ?? '').trim());
    if (range === null) return { location: this.location(answer, repo, req.operation, location), offset: 0 };
    // `0-0` is both "nothing" and "one byte": take nothing; a registry holding one byte answers the next chunk 416 and the upload restarts.
    const last = Number(range[1]);
    return { location: this.location(answer, repo, req.operation, location), offset: last === 0 ? 0 : last + 1 };
  }

  /** The upload URL an answer names (Location, relative to where it came from). */
  private location(answer: SessionAnswer, repo: string, operation: string, fallback?: URL): URL {
    const header = answer.res.headers.location;
    if (header === undefined) {
      if (fallback !== undefined) return fallback;
      throw this.invalid(repo, operation, 'the answer has no Location');
    }
    try {
      return new URL(header, answer.url);
    } catch {
      throw this.invalid(repo, operation, `the answer has an invalid Location ${JSON.stringify(header.slice(0, 200))}`);
    }
  }

  /** Every page of a listing, each parsed JSON, following Link rel="next". `refuse` turns a status into an error, or lets it end the listing. */
  private async *pages(first: SessionRequest, signal: AbortSignal, onMissing: (status: number, said: string) => Error | undefined): AsyncIterable<unknown> {
    let req: SessionRequest = first;
    for (let page = 0; page < 100_000; page++) {
      const answer = await this.session.request(req, signal);
      const status = answer.res.statusCode ?? 0;
      if (status !== 200) {
        if (status === 404 || status === 401 || status === 403 || status === 400 || status === 405) {
          const said = ` ${(await readBody(answer.res, 16 * 1024).catch(() => Buffer.alloc(0))).toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 200)}`;
          const err = onMissing(status, said.trim() === '' ? '' : `:${said}`);
          if (err !== undefined) throw err;
          if (status === 404) return;
          throw new ReplicationError({ registry: this.name, repo: req.repo, operation: req.operation, status, said: said.trim(), retryable: false });
        }
        throw await this.session.failure(req, answer.res);
      }
      const bytes = await this.readAll(answer.res, 16 * 1024 * 1024, req.repo, req.operation);
      try {
        yield JSON.parse(bytes.toString('utf8')) as unknown;
      } catch (err) {
        if (err instanceof SyntaxError) throw this.invalid(req.repo, req.operation, 'the answer is not JSON');
        throw err;
      }
      const next = nextLink(firstHeader(answer.res.headers.link));
      if (next === undefined) return;
      let url: URL;
      try {
        url = new URL(next, answer.url);
      } catch {
        throw this.invalid(req.repo, req.operation, 'the Link header names an invalid URL');
      }
      if (url.origin !== answer.url.origin) throw this.invalid(req.repo, req.operation, `the next page is on another origin (${url.origin})`);
      req = { ...first, path: undefined, url };
    }
  }

  private descriptors(doc: unknown, repo: string, operation: string): ReferrerRef[] {
    const manifests = (doc as { manifests?: unknown } | null)?.manifests;
    if (manifests === undefined || manifests === null) return [];
    if (!Array.isArray(manifests)) throw this.invalid(repo, operation, 'the index has no manifests list');
    return manifests.map((entry: unknown) => {
      const d = (entry ?? {}) as { digest?: unknown; mediaType?: unknown; size?: unknown; artifactType?: unknown };
      if (typeof d.digest !== 'string' || parseDigestOrUndefined(d.digest) === undefined || typeof d.mediaType !== 'string' || !Number.isSafeInteger(d.size))
        throw this.invalid(repo, operation, 'the index lists a malformed descriptor');
      return {
        digest: d.digest,
        mediaType: d.mediaType,
        size: d.size as number,
        artifactType: typeof d.artifactType === 'string' ? d.artifactType : undefined,
      };
    });
  }

  private async readAll(res: http.IncomingMessage, limit: number, repo: string | undefined, operation: string): Promise<Buffer> {
    const declared = Number(res.headers['content-length'] ?? 'NaN');
    if (Number.isFinite(declared) && declared > limit) {
      res.destroy();
      throw this.invalid(repo, operation, `the answer is ${declared} bytes, more than the ${limit} allowed`);
    }
    try {
      return await readBody(res, limit);
    } catch (err) {
      if (err instanceof BodyLimitError) throw this.invalid(repo, operation, `the answer is more than the ${limit} bytes allowed`);
      if (err instanceof TransportError) throw new ReplicationError({ registry: this.name, repo, operation, said: err.message, retryable: true });
      throw new ReplicationError({ registry: this.name, repo, operation, said: `broke off: ${(err as Error).message}`, retryable: true });
    }
  }

  private invalid(repo: string | undefined, operation: string, said: string): ReplicationError {
    return new ReplicationError({ registry: this.name, repo, operation, said, retryable: false });
  }
}

/** Reads a stream in pieces of an exact size (shorter only at its end). */
class ChunkReader {
  private readonly chunks: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly stream: Readable) {
    this.chunks = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  async read(length: number): Promise<Buffer> {
    const parts: Buffer[] = [this.pending];
    let have = this.pending.length;
    while (have < length) {
      const next = await this.chunks.next();
      if (next.done === true) break;
      parts.push(next.value);
      have += next.value.length;
    }
    const all = parts.length === 1 ? this.pending : Buffer.concat(parts);
    this.pending = all.subarray(length);
    return all.subarray(0, length);
  }

  destroy(): void {
    this.stream.destroy();
  }
}

/** Worth another try: the registry's passing trouble, or a source stream broken off by the network. */
function isRetryable(err: unknown): boolean {
  if (err instanceof ReplicationError) return err.retryable;
  if (err instanceof TransportError) return true;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

async function* skipBytes(stream: AsyncIterable<Buffer>, count: number): AsyncIterable<Buffer> {
  let left = count;
  for await (const chunk of stream) {
    if (left >= chunk.length) {
      left -= chunk.length;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
}

function nextLink(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(',')) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match !== null && /(?:^|;)\s*rel="?next"?\s*(?:;|$)/i.test(match[2] ?? '')) return match[1];
  }
  return undefined;
}

/** The subject a manifest refers to; undefined for one without (or one that does not parse: the registry judged it already). */
function subjectOf(manifest: FetchedManifest): ParsedDigest | undefined {
  try {
    const subject = parseManifest(manifest.bytes, manifest.mediaType).subject;
    return subject === undefined ? undefined : parseDigest(subject.digest);
  } catch {
    return undefined;
  }
}

/** How the referrers API would list `referrer`: its artifactType (or config media type) and annotations. */
function referrerDescriptor(referrer: FetchedManifest): Descriptor {
  const parsed = parseManifest(referrer.bytes, referrer.mediaType);
  const descriptor: Descriptor = { mediaType: referrer.mediaType, digest: referrer.digest, size: referrer.size };
  if (parsed.artifactType !== undefined) descriptor.artifactType = parsed.artifactType;
  if (parsed.annotations !== undefined) descriptor.annotations = parsed.annotations;
  return descriptor;
}
