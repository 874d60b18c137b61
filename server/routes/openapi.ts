import type { FastifyInstance } from 'fastify';

/*
 * The management API as an OpenAPI 3.1 document, kept as data beside the routes. A test checks that
 * every registered /api/v1 route is described here (test/api-mgmt/manifests.test.ts), so a new route
 * without an entry fails CI. Bodies are described loosely: docs/*.md hold the details.
 */

interface Param {
  name: string;
  in: 'path' | 'query';
  required?: boolean;
  description?: string;
  schema: { type: 'string' | 'integer' | 'boolean'; enum?: string[] };
}

const path = (name: string, description: string): Param => ({ name, in: 'path', required: true, description, schema: { type: 'string' } });
const query = (name: string, description: string, type: Param['schema']['type'] = 'string'): Param => ({ name, in: 'query', description, schema: { type } });
const page = [query('n', 'page size', 'integer'), query('last', 'the last item of the previous page')];
const repository = path('name', 'repository name (may contain /)');

const json = { 'application/json': { schema: { type: 'object' } } };
const errors = {
  '400': { description: 'invalid request (OCI error body)' },
  '401': { description: 'authentication needed, or a token with more scope' },
  '403': { description: 'denied' },
  '404': { description: 'not found' },
};

function op(summary: string, options: { parameters?: Param[]; body?: boolean; ok?: string; more?: Record<string, { description: string }> } = {}) {
  return {
    summary,
    ...(options.parameters ? { parameters: options.parameters } : {}),
    ...(options.body ? { requestBody: { required: true, content: json } } : {}),
    responses: { [options.ok ?? '200']: { description: 'success', content: json }, ...options.more, ...errors },
  };
}

export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'Berth management API', version: '1', description: 'Operator and UI endpoints beside the OCI distribution API (docs/management-api.md).' },
  components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, basic: { type: 'http', scheme: 'basic' } } },
  security: [{ bearer: [] }, { basic: [] }],
  paths: {
    '/api/v1/openapi.json': { get: { summary: 'this document', security: [], responses: { '200': { description: 'the OpenAPI document', content: json } } } },
    '/api/v1/info': {
      get: {
        summary: 'version, how to sign in, deletes and read-only mode, which features are on (public: nothing secret)',
        security: [],
        responses: { '200': { description: 'registry information', content: json } },
      },
    },
    '/api/v1/status': {
      get: op(
        "the dashboard: the caller and its registry-wide pages; gc, retention, quotas, events and replication, each section only if the caller may open that feature's route",
      ),
    },
    '/api/v1/repositories': {
      get: op('repositories, paged', {
        parameters: [query('q', 'name substring'), query('sort', 'name, size, lastPush or lastPull'), query('order', 'asc or desc'), ...page],
      }),
    },
    '/api/v1/repositories/{name}': {
      get: op("one repository's entry of the list: tag count, size, push and pull times (pull)", { parameters: [repository] }),
    },
    '/api/v1/repositories/{name}/tags': {
      get: op("a repository's tags with digest, size and push time, paged", {
        parameters: [repository, query('q', 'tag substring'), query('sort', 'name, pushedAt, pulls or lastPull'), query('order', 'asc or desc'), ...page],
      }),
    },
    '/api/v1/repositories/{name}/manifests/{reference}': {
      get: op('a manifest: config, layers, history, platform, children, tags and referrers (pull)', {
        parameters: [repository, path('reference', 'tag or digest')],
      }),
      delete: op('deletes a manifest and its tags (delete); refused while an immutable tag points at it', {
        parameters: [repository, path('reference', 'digest')],
      }),
    },
    '/api/v1/repositories/{name}/tags/{reference}': {
      delete: op('deletes a tag (delete); immutable tags are refused', { parameters: [repository, path('reference', 'tag')] }),
    },
    '/api/v1/repositories/{name}/delete': {
      post: op('deletes {"tags": [...], "digests": [...]}, answering each item (delete)', {
        parameters: [repository],
        body: true,
        more: { '207': { description: 'some items were not deleted; see results' } },
      }),
    },
    '/api/v1/pulls': {
      get: op('pull statistics', {
        parameters: [query('repository', 'repository name'), query('tag', 'one tag'), query('days', 'days of history', 'integer'), ...page],
      }),
    },
    '/api/v1/quotas': { get: op('quota usage by namespace', { parameters: [query('namespace', 'one namespace'), ...page] }) },
    '/api/v1/gc': {
      get: op('garbage collection status'),
      post: op('starts a garbage-collection run', {
        parameters: [query('dryRun', '1 to only report', 'boolean')],
        ok: '202',
        more: { '409': { description: 'a run is going' } },
      }),
    },
    '/api/v1/immutable-tags': {
      get: op('the immutable-tag rules for a repository, and whether a tag is immutable', {
        parameters: [{ ...query('repository', 'repository name'), required: true }, query('tag', 'a tag')],
      }),
    },
    '/api/v1/retention': { get: op('retention policies, state and this process’s run') },
    '/api/v1/retention/preview': {
      get: op('what the configured policies would delete and keep', { parameters: [query('repository', 'one repository')] }),
      post: op('the same for the policies in the body', { parameters: [query('repository', 'one repository')], body: true }),
    },
    '/api/v1/retention/run': {
      post: op('starts a retention run', {
        parameters: [query('dryRun', '1 to only report', 'boolean')],
        ok: '202',
        more: { '409': { description: 'a run is going' } },
      }),
    },
    '/api/v1/events': { get: op('recent event records, newest first', { parameters: [query('repository', 'repository name'), ...page] }) },
    '/api/v1/events/status': { get: op("the event log and every endpoint's progress") },
    '/api/v1/events/endpoints/{name}/dead-letters': {
      get: op("an endpoint's dead letters, paged", { parameters: [path('name', 'endpoint name'), ...page] }),
      delete: op("discards all of an endpoint's dead letters", { parameters: [path('name', 'endpoint name')] }),
    },
    '/api/v1/events/endpoints/{name}/dead-letters/{id}': {
      delete: op('discards one dead letter', { parameters: [path('name', 'endpoint name'), path('id', 'dead letter id')] }),
    },
    '/api/v1/events/endpoints/{name}/replay': {
      post: op('replays records since a time, or the dead letters', { parameters: [path('name', 'endpoint name')], body: true }),
    },
    '/api/v1/replication': { get: op('replication rules and their status') },
    '/api/v1/replication/rules/{rule}': {
      get: op("a rule's status and artifacts, paged", { parameters: [path('rule', 'rule name'), query('state', 'artifact state'), ...page] }),
    },
    '/api/v1/replication/rules/{rule}/run': {
      post: op('starts a pass of a rule', { parameters: [path('rule', 'rule name')], ok: '202', more: { '409': { description: 'a pass is going' } } }),
    },
  },
} as const;

/** GET /api/v1/openapi.json: public, like /v2/'s version check, so tools can read it before logging in. */
export async function openApiRoutes(app: FastifyInstance): Promise<void> {
  app.get('/api/v1/openapi.json', async (_request, reply) => reply.send(OPENAPI_DOCUMENT));
}
