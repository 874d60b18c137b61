import { z } from 'zod';
import { ruleSchema, groupsSchema } from './rules-schema.js';

/** Algorithms Berth signs its own tokens with. Symmetric ones are deliberately absent. */
export const SIGNING_ALGORITHMS = ['ES256', 'RS256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** Algorithms accepted from an external issuer; never `none` nor an HMAC. */
export const VERIFY_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'] as const;

const externalIssuerSchema = z
  .object({
    issuer: z.string().min(1).describe("Must equal the tokens' `iss`."),
    jwksUrl: z.string().url().optional().describe('JWKS URL; fetched, cached and refreshed on an unknown `kid`.'),
    publicKeyFiles: z.array(z.string().min(1)).default([]).describe('PEM files: SPKI public keys or X.509 certificates.'),
    algorithms: z.array(z.enum(VERIFY_ALGORITHMS)).min(1).default(['RS256', 'ES256']),
    audience: z.string().min(1).optional().describe('Expected `aud`; defaults to auth.service.'),
    realm: z.string().url().optional().describe('Token endpoint clients are sent to when Berth runs no token service.'),
  })
  .strict()
  .refine((v) => v.jwksUrl !== undefined || v.publicKeyFiles.length > 0, { message: 'needs jwksUrl or publicKeyFiles' });

/** Authentication and authorization settings (see auth/README.md). */
export const authConfigSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Require Docker token auth on every /v2/ request.'),
    service: z.string().min(1).default('berth').describe("The `service` clients ask the token endpoint for; the tokens' `aud`."),
    issuer: z.string().min(1).default('berth').describe('`iss` of the tokens Berth signs.'),
    realm: z.string().url().optional().describe('Bearer challenge realm; default <http.publicUrl or the request origin><auth.tokenPath>.'),
    tokenPath: z.string().startsWith('/').default('/auth/token').describe('Path of the built-in token endpoint (GET and OAuth2 POST).'),
    jwksPath: z.string().startsWith('/').default('/auth/jwks.json').describe('Path of the JWKS with the token signing keys.'),
    tokenService: z.boolean().default(true).describe('Run the built-in token service; turn off when only external issuers hand out tokens.'),
    tokenTtlSeconds: z.number().int().min(60).default(300).describe('Access token lifetime (at least 60).'),
    refreshTokenTtlSeconds: z
      .number()
      .int()
      .min(60)
      .default(30 * 24 * 3600)
      .describe('Refresh token lifetime (offline_token=true / access_type=offline).'),
    clockToleranceSeconds: z
      .number()
      .int()
      .min(0)
      .max(300)
      .default(30)
      .describe('Allowed clock skew when checking exp, nbf and iat (a token issued further in the future is refused).'),
    signing: z
      .object({
        algorithm: z.enum(SIGNING_ALGORITHMS).default('ES256').describe('Token signing algorithm.'),
        keyFile: z.string().min(1).optional().describe('PKCS#8 PEM private key; without it a key is generated on first start and kept.'),
        keyDir: z.string().min(1).optional().describe('Where generated keys live; default <dataDir>/auth/keys.'),
        rotateAfterDays: z.number().positive().optional().describe('Generate a new signing key when the active one is this old.'),
      })
      .strict()
      .prefault({}),
    htpasswdFile: z.string().min(1).optional().describe('Users, bcrypt htpasswd format (`htpasswd -B`); default <dataDir>/auth/htpasswd.'),
    robotsFile: z.string().min(1).optional().describe('Robot accounts (JSON, secrets hashed); default <dataDir>/auth/robots.json.'),
    rulesFile: z.string().min(1).optional().describe('YAML file with `groups` and `rules`, reloaded when it changes.'),
    groups: groupsSchema.default({}).describe('Group name → members (user names or robot+<name>).'),
    rules: z.array(ruleSchema).default([]).describe('Access rules, evaluated together with those in rulesFile.'),
    userNamespaces: z.boolean().default(false).describe('Every user gets all actions on repositories under <username>/.'),
    externalIssuers: z.array(externalIssuerSchema).default([]).describe('Other token issuers whose tokens Berth accepts.'),
    loginLimits: z
      .object({
        perUserAndAddress: z
          .number()
          .int()
          .min(1)
          .default(5)
          .describe('Login attempts per (user name, client address) pair within the window; a correct login clears its pair.'),
        perAddress: z.number().int().min(1).default(20).describe('Login attempts per client address, over all user names, within the window.'),
        perUser: z
          .number()
          .int()
          .min(1)
          .default(100)
          .describe(
            'Login attempts per user name over all addresses within the window; not applied to an address the user logged in from within trustedAddressSeconds.',
          ),
        windowSeconds: z.number().int().min(1).default(300).describe('Sliding window for counting login attempts.'),
        trustedAddressSeconds: z
          .number()
          .int()
          .min(0)
          .default(7 * 24 * 3600)
          .describe('After a correct login, that user from that address skips the per-user and per-address limits for this long (0: never).'),
      })
      .strict()
      .prefault({}),
    passwordChecks: z
      .object({
        workers: z.number().int().min(1).max(64).optional().describe('Worker threads that run bcrypt; default min(2, CPUs).'),
        maxQueued: z
          .number()
          .int()
          .min(0)
          .default(64)
          .describe('Password checks that may wait for a worker; beyond it the token endpoint answers 429 with Retry-After.'),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type AuthConfig = z.infer<typeof authConfigSchema>;
export type AuthConfigInput = z.input<typeof authConfigSchema>;
export type ExternalIssuerConfig = z.infer<typeof externalIssuerSchema>;
