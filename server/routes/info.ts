import type { FastifyInstance } from 'fastify';
import { configuredRealm } from '../../auth/realm.js';
import type { BerthConfig } from '../config.js';
import { berthVersion } from '../operations/version.js';
import { enabledFeatures, type Feature } from './features.js';

/** With auth on: where a client gets a token and for which `service`, as the Bearer challenge says. */
export type AuthInfo =
  | { enabled: false }
  | {
      enabled: true;
      /** Berth hands out tokens itself at `tokenPath`; false: only an external token server does, at `realm`. */
      tokenService: boolean;
      tokenPath?: string;
      service: string;
      /** The configured realm (an external token server's, or auth.realm); absent: `<this origin><tokenPath>`. */
      realm?: string;
    };

export interface RegistryInfo {
  version: string;
  auth: AuthInfo;
  deleteEnabled: boolean;
  readOnly: boolean;
  features: Record<Feature, boolean>;
}

/*
 * Everything here is what any client learns anyway: the realm and service are in the 401 challenge of
 * every /v2/ request, read-only mode and disabled deletes in the error of a refused write, and the
 * features from how the registry answers. No secrets, user, robot or repository names, hosts of
 * upstreams, replication targets or webhook endpoints. The version is the one deliberate addition (a UI
 * shows it; an operator who wants it hidden blocks this path at the proxy).
 */
export function registryInfo(config: BerthConfig): RegistryInfo {
  const auth = config.auth;
  let authInfo: AuthInfo = { enabled: false };
  if (auth?.enabled) {
    const realm = configuredRealm(auth);
    authInfo = {
      enabled: true,
      tokenService: auth.tokenService,
      ...(auth.tokenService ? { tokenPath: auth.tokenPath } : {}),
      service: auth.service,
      ...(realm === undefined ? {} : { realm }),
    };
  }
  return {
    version: berthVersion(),
    auth: authInfo,
    deleteEnabled: config.delete.enabled,
    readOnly: config.readOnly,
    features: enabledFeatures(config),
  };
}

/** GET /api/v1/info: public, so a UI can ask before sign-in how to sign in and what to show. */
export async function infoRoutes(app: FastifyInstance, config: BerthConfig): Promise<void> {
  const info = registryInfo(config);
  app.get('/api/v1/info', async (_request, reply) => reply.send(info));
}
