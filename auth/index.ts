import { join, resolve } from 'node:path';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { TokenAuthorizer } from './authorizer.js';
import { type AuthConfig, authConfigSchema, type AuthConfigInput } from './config.js';
import { KeyStore } from './keys.js';
import type { LoginCounterStore } from './login-counters.js';
import { configuredRealm } from './realm.js';
import { PasswordPool, type PasswordPoolStats } from './password-pool.js';
import { LoginLimiter } from './rate-limit.js';
import { RobotStore } from './robots.js';
import { Policy } from './rules.js';
import { tokenServicePlugin } from './token-service.js';
import { AccessTokenVerifier, TokenIssuer } from './token.js';
import { type AuthFailureReason, type Authorizer, openAccess } from './types.js';
import { UserStore } from './users.js';

export { LOG_REDACT_PATHS, SENSITIVE_HEADERS } from './redact.js';
export { isLoopbackHost, openAccessWarning } from './warnings.js';
export { authConfigSchema, type AuthConfig } from './config.js';
export { configuredRealm } from './realm.js';
export { type LoginCounterStore, MemoryLoginCounters, RedisLoginCounters } from './login-counters.js';

/** What auth needs to log; a pino/Fastify logger fits. */
export interface AuthLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export type AuthFailureSink = (failure: { actor: string; reason: AuthFailureReason; request: { ip: string; id: string } }) => void;
export type { AuthFailureReason } from './types.js';

export interface AuthContext {
  dataDir: string;
  /** config.http.publicUrl: the origin clients reach Berth at, used for the token realm. */
  publicUrl?: string | undefined;
  log?: AuthLog;
  /** Called once per refused login, refresh or bearer token (not for the normal 401 challenge). */
  onAuthFailure?: AuthFailureSink;
  /** Clock for tests (ms since epoch). */
  now?: () => number;
  /** Where login attempts are counted; main.ts passes Redis ones with Redis metadata so all processes share them. Default: this process only. */
  loginCounters?: LoginCounterStore;
}

export interface Auth {
  enabled: boolean;
  authorizer: Authorizer;
  /** Token and JWKS endpoints; `app.register(auth.tokenRoutes)` at the root (no prefix). */
  tokenRoutes: FastifyPluginAsync;
  /** Routes auth's own warnings (file reloads, key rotation) to this logger from now on, e.g. app.log. */
  setLog(log: AuthLog): void;
  /** Makes a new signing key active; the old one verifies until its tokens have expired. */
  rotateKey(): Promise<string>;
  /** The bcrypt worker pool's counters (all zero with auth off). */
  passwordChecks(): PasswordPoolStats;
  close(): Promise<void>;
}

/** Default locations under dataDir for everything auth keeps on disk. */
export function authPaths(
  config: Pick<AuthConfig, 'htpasswdFile' | 'robotsFile' | 'signing'>,
  dataDir: string,
): { htpasswd: string; robots: string; keyDir: string } {
  return {
    htpasswd: resolve(config.htpasswdFile ?? join(dataDir, 'auth', 'htpasswd')),
    robots: resolve(config.robotsFile ?? join(dataDir, 'auth', 'robots.json')),
    keyDir: resolve(config.signing.keyDir ?? join(dataDir, 'auth', 'keys')),
  };
}

const consoleLog: AuthLog = {
  info: () => {},
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};

/**
 * Builds auth from its config section. With auth absent or disabled the authorizer lets everything
 * through and tokenRoutes registers nothing.
 */
export async function createAuth(input: AuthConfig | AuthConfigInput | undefined, ctx: AuthContext): Promise<Auth> {
  const config = authConfigSchema.parse(input ?? {});
  const noop: FastifyPluginAsync = async () => {};
  if (!config.enabled) {
    return {
      enabled: false,
      authorizer: openAccess,
      tokenRoutes: noop,
      setLog: () => {},
      rotateKey: async () => {
        throw new Error('auth is not enabled');
      },
      passwordChecks: () => ({ workers: 0, running: 0, queued: 0, compares: 0, hashes: 0, rejected: 0 }),
      close: async () => {},
    };
  }
  let log = ctx.log ?? consoleLog;
  const warn = (m: string) => log.warn(m);
  const now = ctx.now ?? Date.now;
  const paths = authPaths(config, ctx.dataDir);

  const passwords = new PasswordPool({ workers: config.passwordChecks.workers, maxQueued: config.passwordChecks.maxQueued });
  const users = new UserStore(paths.htpasswd, warn, passwords);
  const robots = new RobotStore(paths.robots, warn);
  const policy = new Policy({
    groups: config.groups,
    rules: config.rules,
    rulesFile: config.rulesFile,
    userNamespaces: config.userNamespaces,
    warn,
  });
  const [htpasswd, robotList] = await Promise.all([users.load(), robots.load(), policy.load()]);
  if (config.tokenService && htpasswd.users.size === 0 && robotList.length === 0) {
    warn(`auth is on but ${paths.htpasswd} has no users and there are no robots: only anonymous rules apply. Add one with \`berth user add <name>\`.`);
  }

  const settings = {
    issuer: config.issuer,
    service: config.service,
    tokenTtlSeconds: config.tokenTtlSeconds,
    refreshTokenTtlSeconds: config.refreshTokenTtlSeconds,
    clockToleranceSeconds: config.clockToleranceSeconds,
    now,
  };
  let keys: KeyStore | undefined;
  if (config.tokenService) {
    keys = new KeyStore({
      keyDir: paths.keyDir,
      algorithm: config.signing.algorithm,
      keyFile: config.signing.keyFile,
      rotateAfterDays: config.signing.rotateAfterDays,
      retainSeconds: Math.max(config.tokenTtlSeconds, config.refreshTokenTtlSeconds) + config.clockToleranceSeconds,
      now,
      warn,
    });
    await keys.init();
  } else if (config.externalIssuers.length === 0) {
    throw new Error('auth.tokenService is off and no auth.externalIssuers are configured: no token could ever be valid');
  }
  const verifier = await AccessTokenVerifier.create(keys, settings, config.externalIssuers);

  const fixedRealm = configuredRealm(config);
  if (!config.tokenService && !fixedRealm) throw new Error('auth.realm (or an external issuer realm) is required when auth.tokenService is off');
  const publicBase = ctx.publicUrl?.replace(/\/+$/, '');
  const realm = (request: FastifyRequest): string => fixedRealm ?? `${publicBase ?? `${request.protocol}://${request.host}`}${config.tokenPath}`;

  const onFailure: AuthFailureSink = (f) => {
    try {
      ctx.onAuthFailure?.(f);
    } catch (err) {
      warn(`auth failure sink threw: ${(err as Error).message}`);
    }
  };
  const authorizer = new TokenAuthorizer({ verifier, policy, users, robots, service: config.service, realm, onFailure });
  const tokenRoutes =
    keys === undefined
      ? noop
      : tokenServicePlugin({
          tokenPath: config.tokenPath,
          jwksPath: config.jwksPath,
          service: config.service,
          issuer: new TokenIssuer(keys, settings),
          keys,
          users,
          robots,
          policy,
          limiter: new LoginLimiter(config.loginLimits, ctx.loginCounters, now),
          onFailure,
        });

  let timer: NodeJS.Timeout | undefined;
  if (keys && config.signing.rotateAfterDays !== undefined && !config.signing.keyFile) {
    const ks = keys;
    timer = setInterval(() => {
      ks.rotateIfDue().then(
        (rotated) => rotated && log.info('auth: rotated the token signing key'),
        (err: unknown) => log.error(`auth: key rotation failed: ${(err as Error).message}`),
      );
    }, 3_600_000);
    timer.unref();
  }

  return {
    enabled: true,
    authorizer,
    tokenRoutes,
    setLog: (l) => {
      log = l;
    },
    rotateKey: async () => {
      if (!keys) throw new Error('the built-in token service is off');
      return keys.rotate();
    },
    passwordChecks: () => passwords.stats(),
    close: async () => {
      if (timer) clearInterval(timer);
      await passwords.close();
    },
  };
}
