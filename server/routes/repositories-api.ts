import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccessNeed } from '../../auth/types.js';
import { OciError } from '../errors.js';
import { assertName } from '../registry/references.js';
import { assertRepositoryKnown } from '../registry/repositories.js';
import { SCAN_LIMIT, listTagListings, summarizeTags, type RepositorySummary, type TagListing } from '../registry/repository-summary.js';
import type { RouteContext } from './context.js';
import { registryAccess } from './registry-access.js';
import { pageParams, queryParam } from './http.js';
import { API_REPO_PREFIX } from './url-rewrite.js';

const CATALOG_ACCESS: AccessNeed = registryAccess('catalog');
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

type Order = 'asc' | 'desc';

function choice<T extends string>(request: FastifyRequest, name: string, allowed: readonly T[], fallback: T): T {
  const raw = queryParam(request, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new OciError('REQUEST_INVALID', `${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return raw as T;
}

/** Compares keys with nulls (never pushed or pulled) last in either order, then by `tie` ascending. */
function sorter<T>(key: (x: T) => string | number | null, tie: (x: T) => string, order: Order): (a: T, b: T) => number {
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka !== kb) {
      if (ka === null) return 1;
      if (kb === null) return -1;
      const c = ka < kb ? -1 : 1;
      return order === 'asc' ? c : -c;
    }
    const ta = tie(a);
    const tb = tie(b);
    return ta < tb ? -1 : ta > tb ? 1 : 0;
  };
}

/**
 * One page of a sorted list: `last` names the entry the previous page ended with (a name or tag, not a
 * position), so the page after it is found in the list as sorted now.
 */
function pageOf<T>(sorted: T[], id: (x: T) => string, n: number, last: string | undefined): { page: T[]; nextLast?: string } {
  let start = 0;
  if (last !== undefined) {
    const at = sorted.findIndex((x) => id(x) === last);
    // The entry went away since the previous page: start over rather than skip or repeat silently.
    start = at === -1 ? 0 : at + 1;
  }
  const page = sorted.slice(start, start + n);
  const more = start + n < sorted.length && page.length > 0;
  return more ? { page, nextLast: id(page[page.length - 1] as T) } : { page };
}

function nextLink(reply: FastifyReply, path: string, request: FastifyRequest, n: number, nextLast: string): void {
  const query = new URLSearchParams();
  for (const name of ['q', 'sort', 'order']) {
    const v = queryParam(request, name);
    if (v !== undefined) query.set(name, v);
  }
  query.set('n', String(n));
  query.set('last', nextLast);
  reply.header('Link', `<${path}?${query.toString()}>; rel="next"`);
}

const REPO_SORTS = ['name', 'size', 'lastPush', 'lastPull'] as const;
const TAG_SORTS = ['name', 'pushedAt', 'pulls', 'lastPull'] as const;
const ORDERS = ['asc', 'desc'] as const;

const repoKeys: Record<(typeof REPO_SORTS)[number], (r: RepositorySummary) => string | number | null> = {
  name: (r) => r.name,
  size: (r) => r.sizeBytes,
  lastPush: (r) => r.lastPushedAt,
  lastPull: (r) => r.lastPulledAt,
};
const tagKeys: Record<(typeof TAG_SORTS)[number], (t: TagListing) => string | number | null> = {
  name: (t) => t.tag,
  pushedAt: (t) => t.pushedAt,
  pulls: (t) => t.pulls,
  lastPull: (t) => t.lastPulledAt,
};

/** The names (in the order given) the caller may pull. */
async function visibleRepositories(ctx: RouteContext, request: FastifyRequest, names: string[]): Promise<string[]> {
  // An operator who may read the whole catalog sees every repository without asking about each one.
  if (await ctx.authorizer.allows(request, CATALOG_ACCESS)) return names;
  const allowed = await ctx.authorizer.allowsEach(
    request,
    names.map((name) => ({ type: 'repository', name, actions: ['pull'] })),
  );
  return names.filter((_, i) => allowed[i]);
}

/**
 * Repositories and their tags for the web UI (docs/management-api.md):
 *   GET /api/v1/repositories[?q=&sort=&order=&n=&last=]
 *   GET /api/v1/repositories/<name>                  one repository's entry
 *   GET /api/v1/repositories/<name>/tags[?q=&sort=&order=&n=&last=]
 * A caller sees the repositories it may pull. By name, only the page is summarized; the other sorts
 * need every visible repository's summary, which ctx.summaries keeps per process for a short while.
 */
export async function repositoryApiRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.get('/api/v1/repositories', async (request, reply) => {
    const q = queryParam(request, 'q') ?? '';
    const sort = choice(request, 'sort', REPO_SORTS, 'name');
    const order = choice(request, 'order', ORDERS, 'asc');
    const { n, last } = pageParams(request, MAX_PAGE, DEFAULT_PAGE);
    const size = n ?? DEFAULT_PAGE;
    // In byte order, as the store lists them: by name, only the page needs a summary.
    const names = (await ctx.metadata.listRepositories({ n: SCAN_LIMIT })).filter((name) => name.includes(q));
    const visible = await visibleRepositories(ctx, request, names);
    let page: RepositorySummary[];
    let nextLast: string | undefined;
    if (sort === 'name') {
      const listed = pageOf(order === 'asc' ? visible : visible.reverse(), (name) => name, size, last);
      page = await ctx.summaries.getMany(listed.page);
      nextLast = listed.nextLast;
    } else {
      const summaries = await ctx.summaries.getMany(visible);
      summaries.sort(sorter(repoKeys[sort], (r) => r.name, order));
      ({ page, nextLast } = pageOf(summaries, (r) => r.name, size, last));
    }
    if (nextLast !== undefined) nextLink(reply, '/api/v1/repositories', request, size, nextLast);
    return reply.send(nextLast === undefined ? { repositories: page } : { repositories: page, next: nextLast });
  });

  // Repository names contain '/': the URL rewrite (url-rewrite.ts) moves the name into one segment.
  app.get<{ Params: { name: string } }>(`${API_REPO_PREFIX}:name/tags`, async (request, reply) => {
    const repo = assertName(request.params.name);
    const q = queryParam(request, 'q') ?? '';
    const sort = choice(request, 'sort', TAG_SORTS, 'name');
    const order = choice(request, 'order', ORDERS, 'asc');
    const { n, last } = pageParams(request, MAX_PAGE, DEFAULT_PAGE);
    await ctx.authorizer.authorize(request, [{ type: 'repository', name: repo, actions: ['pull'] }]);
    await assertRepositoryKnown(ctx.metadata, repo);
    // Sorted and paged on what the tag list itself holds; manifests are read for the page only.
    const tags = (await listTagListings(ctx.metadata, repo)).filter((t) => t.tag.includes(q));
    tags.sort(sorter(tagKeys[sort], (t) => t.tag, order));
    const { page: listed, nextLast } = pageOf(tags, (t) => t.tag, n ?? DEFAULT_PAGE, last);
    const page = await summarizeTags(ctx.metadata, ctx.manifests, repo, listed);
    const path = `/api/v1/repositories/${repo}/tags`;
    if (nextLast !== undefined) nextLink(reply, path, request, n ?? DEFAULT_PAGE, nextLast);
    return reply.send(nextLast === undefined ? { repository: repo, tags: page } : { repository: repo, tags: page, next: nextLast });
  });

  app.get<{ Params: { name: string } }>(`${API_REPO_PREFIX}:name`, async (request, reply) => {
    const repo = assertName(request.params.name);
    await ctx.authorizer.authorize(request, [{ type: 'repository', name: repo, actions: ['pull'] }]);
    await assertRepositoryKnown(ctx.metadata, repo);
    return reply.send(await ctx.summaries.get(repo));
  });
}
