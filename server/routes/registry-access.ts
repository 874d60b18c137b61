import type { AccessNeed } from '../../auth/types.js';

/*
 * The registry-wide resources of the management API: `*` on one (in the rules, `registry: gc`, and in a
 * token, `registry:gc:*`) opens that feature's routes for every repository. Named once here, for the
 * routes and for GET /api/v1/status, which reports the ones a caller may open.
 */
export const REGISTRY_RESOURCES = ['catalog', 'stats', 'immutable', 'gc', 'retention', 'quotas', 'events', 'replication'] as const;
export type RegistryResource = (typeof REGISTRY_RESOURCES)[number];

export function registryAccess(resource: RegistryResource): AccessNeed {
  return { type: 'registry', name: resource, actions: ['*'] };
}
