import type { FastifyInstance, FastifyRequest, HTTPMethods } from 'fastify';
import type { OciError } from '../../errors/oci-error.js';
import { assertName } from '../registry/references.js';

/**
 * Digests, tags and upload ids hold no '/', so `<route>/*` catches the longer paths. They name no
 * endpoint, but answering 404 NOT_FOUND would hide why: the last parameter, with the rest of the
 * path, is checked as that parameter (a malformed one gets its own error) and otherwise names
 * nothing, answered with `unknown`.
 */
export function refuseDeeperPaths(
  app: FastifyInstance,
  route: { url: string; param: string; methods: HTTPMethods[] },
  check: (value: string, request: FastifyRequest) => unknown,
  unknown: () => OciError,
): void {
  app.route<{ Params: Record<string, string> }>({
    method: route.methods,
    url: `${route.url}/*`,
    handler: async (request) => {
      assertName(request.params.name ?? '');
      check(`${request.params[route.param] ?? ''}/${request.params['*'] ?? ''}`, request);
      throw unknown();
    },
  });
}
