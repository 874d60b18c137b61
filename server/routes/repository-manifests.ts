import type { FastifyInstance, FastifyRequest } from 'fastify';
import { tokenImmutabilityFor } from '../../auth/tag-patterns.js';
import { OciError } from '../errors.js';
import { ImmutableTagRefusal } from '../registry/immutable/refusal.js';
import { assertName, assertTag, parseDigest, parseReference } from '../registry/references.js';
import { assertDeletable, authorizeFirst, principalOf } from './access.js';
import type { RouteContext } from './context.js';
import { API_REPO_PREFIX } from './url-rewrite.js';

/** An image config larger than this is not parsed for history and platform (it is read whole). */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** At most this many tags plus digests in one bulk delete. */
const MAX_BULK_ITEMS = 100;

type Params = { Params: { name: string; reference: string } };

interface Described {
  digest: string;
  size: number;
  mediaType: string;
}

function descriptors(value: unknown): Described[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((d: unknown) => {
    if (d === null || typeof d !== 'object') return [];
    const { digest, size, mediaType } = d as Record<string, unknown>;
    return typeof digest === 'string' && typeof size === 'number' ? [{ digest, size, mediaType: typeof mediaType === 'string' ? mediaType : '' }] : [];
  });
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function platformOf(value: unknown): { os: string | undefined; architecture: string | undefined; variant: string | undefined } | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const { os, architecture, variant } = value as Record<string, unknown>;
  return { os: text(os), architecture: text(architecture), variant: text(variant) };
}

function asObject(bytes: Buffer): Record<string, unknown> {
  const parsed: unknown = JSON.parse(bytes.toString('utf8'));
  return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
}

/**
 * Per-repository manifest details and deletes in the management API (docs/management-api.md):
 *   GET    /api/v1/repositories/<name>/manifests/<tag or digest>   what the manifest holds, its tags and referrers
 *   DELETE /api/v1/repositories/<name>/tags/<tag>                  removes a tag (immutable tags are refused)
 *   DELETE /api/v1/repositories/<name>/manifests/<digest>          removes a manifest and its tags
 *   POST   /api/v1/repositories/<name>/delete                      {"tags": [...], "digests": [...]}, each item answered
 * Names hold '/', so these URLs are rewritten before routing (url-rewrite.ts).
 */
export async function repositoryManifestRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  async function configDetails(config: Described | undefined): Promise<Record<string, unknown>> {
    if (config === undefined || config.size > MAX_CONFIG_BYTES) return {};
    let json: Record<string, unknown>;
    try {
      json = asObject(await ctx.blobs.read(parseDigest(config.digest), config.size));
    } catch (err) {
      // A config that is missing, corrupt or not JSON leaves the details without history, not the request failed.
      if (err instanceof SyntaxError || err instanceof OciError) return {};
      throw err;
    }
    const history = Array.isArray(json.history)
      ? json.history.map((h: unknown) => {
          const entry = h !== null && typeof h === 'object' ? (h as Record<string, unknown>) : {};
          return { created: text(entry.created), createdBy: text(entry.created_by), emptyLayer: entry.empty_layer === true, comment: text(entry.comment) };
        })
      : [];
    return { history, platform: platformOf(json) };
  }

  app.get<Params>(`${API_REPO_PREFIX}:name/manifests/:reference`, async (request, reply) => {
    const name = assertName(request.params.name);
    const reference = parseReference(request.params.reference);
    await ctx.authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull'] }]);
    const record = await ctx.manifests.resolve(name, reference);
    const manifest = asObject(await ctx.manifests.read(record));
    const config = descriptors(manifest.config ? [manifest.config] : [])[0];
    const layers = descriptors(manifest.layers ?? manifest.blobs);
    const children = Array.isArray(manifest.manifests)
      ? manifest.manifests.flatMap((m: unknown) => {
          const [d] = descriptors([m]);
          return d ? [{ ...d, platform: platformOf((m as Record<string, unknown>).platform) }] : [];
        })
      : [];
    const referrers = (await ctx.manifests.referrers(name, parseDigest(record.digest), undefined)).map((r) => ({
      digest: r.digest,
      artifactType: r.artifactType,
      mediaType: r.mediaType,
      size: r.size,
    }));
    return reply.send({
      digest: record.digest,
      mediaType: record.mediaType,
      size: record.size,
      artifactType: record.artifactType,
      subject: record.subject,
      tags: await ctx.metadata.manifestTags(name, record.digest),
      config,
      layers,
      totalSize: record.size + (config?.size ?? 0) + layers.reduce((sum, l) => sum + l.size, 0),
      ...(await configDetails(config)),
      children,
      referrers,
    });
  });

  const deleteAccess = authorizeFirst<Params>(ctx, {
    needs: (request) => [{ type: 'repository', name: assertName(request.params.name), actions: ['delete'] }],
    then: () => assertDeletable(ctx),
  });

  /** Deletes one item, audited; an immutable-tag refusal is also emitted as on /v2/. */
  async function deleteOne(request: FastifyRequest, name: string, item: { tag: string } | { digest: string }): Promise<void> {
    const principal = principalOf(request);
    const token = tokenImmutabilityFor(principal, name);
    const origin = ctx.origin(request, principal);
    try {
      if ('tag' in item) {
        await ctx.manifests.deleteTag(name, assertTag(item.tag), token, origin);
        ctx.emit({ action: 'delete', repository: name, tag: item.tag, principal, request });
        ctx.operatorAction({ action: 'api_tag_deleted', repository: name, tag: item.tag, reason: 'api', principal, request });
      } else {
        await ctx.manifests.deleteByDigest(name, parseDigest(item.digest), token, origin);
        ctx.emit({ action: 'delete', repository: name, digest: item.digest, principal, request });
        ctx.operatorAction({ action: 'api_manifest_deleted', repository: name, digest: item.digest, reason: 'api', principal, request });
      }
    } catch (err) {
      if (err instanceof ImmutableTagRefusal) {
        const { operation, repository, tag, digest, rule } = err.refusal;
        ctx.emit({ action: 'immutable_refused', repository, tag, digest, operation, rule, principal, request });
      }
      throw err;
    }
  }

  app.delete<Params>(`${API_REPO_PREFIX}:name/tags/:reference`, { onRequest: deleteAccess }, async (request, reply) => {
    await deleteOne(request, assertName(request.params.name), { tag: request.params.reference });
    return reply.send({ deleted: true, tag: request.params.reference });
  });

  app.delete<Params>(`${API_REPO_PREFIX}:name/manifests/:reference`, { onRequest: deleteAccess }, async (request, reply) => {
    const digest = parseDigest(request.params.reference).value;
    await deleteOne(request, assertName(request.params.name), { digest });
    return reply.send({ deleted: true, digest });
  });

  app.post<{ Params: { name: string; reference: string }; Body: unknown }>(
    `${API_REPO_PREFIX}:name/delete`,
    { onRequest: deleteAccess },
    async (request, reply) => {
      const name = assertName(request.params.name);
      const body = request.body;
      const usage = 'the body is {"tags": [...], "digests": [...]} (Content-Type: application/json)';
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new OciError('REQUEST_INVALID', usage);
      const { tags = [], digests = [] } = body as Record<string, unknown>;
      const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
      if (!strings(tags) || !strings(digests)) throw new OciError('REQUEST_INVALID', `tags and digests must be lists of strings: ${usage}`);
      if (tags.length + digests.length === 0) throw new OciError('REQUEST_INVALID', `nothing to delete: ${usage}`);
      if (tags.length + digests.length > MAX_BULK_ITEMS) throw new OciError('REQUEST_INVALID', `at most ${MAX_BULK_ITEMS} items per bulk delete`);
      const items: Array<{ tag: string } | { digest: string }> = [...tags.map((tag) => ({ tag })), ...digests.map((digest) => ({ digest }))];
      const results: Array<Record<string, unknown>> = [];
      // One at a time, tags first: a tag removed before its manifest is answered as a tag delete.
      for (const item of items) {
        try {
          await deleteOne(request, name, item);
          results.push({ ...item, deleted: true });
        } catch (err) {
          if (err instanceof ImmutableTagRefusal)
            results.push({ ...item, deleted: false, code: err.code, immutableTag: err.refusal.tag, rule: err.refusal.rule });
          else if (err instanceof OciError) results.push({ ...item, deleted: false, code: err.code, message: err.message });
          else throw err;
        }
      }
      const deleted = results.filter((r) => r.deleted === true).length;
      return reply.code(deleted === results.length ? 200 : 207).send({ deleted, failed: results.length - deleted, results });
    },
  );
}
