import { z } from 'zod';
import { ruleSchema, groupsSchema } from './rules-schema.js';

/** Algorithms Berth signs its own tokens with. Symmetric ones are deliberately absent. */
export const SIGNING_ALGORITHMS = ['ES256', 'RS256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** Algorithms accepted from an external issuer; never `none` nor an HMAC. */
export const VERIFY_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'] as const;

const externalIssuerSchema = z
  .object({
    /** Must equal the tokens' `iss`. */
    issuer: z.string().min(1),
    /** Keys published as a JWKS; fetched, cached and refreshed on an unknown `kid`. */
    jwksUrl: z.string().url().optional(),
    /** PEM files: SPKI public keys (`BEGIN PUBLIC KEY`) or X.509 certificates. */
    publicKeyFiles: z.array(z.string().min(1)).default([]),
    algorithms: z.array(z.enum(VERIFY_ALGORITHMS)).min(1).default(['RS256', 'ES256']),
    /** Expected `aud`; defaults to auth.service. */
    audience: z.string().min(1).optional(),
    /** Bearer challenge realm clients are sent to; defaults to Berth's own token endpoint. */
    realm: z.string().url().optional(),
  })
  .strict()
  .refine((v) => v.jwksUrl !== undefined || v.publicKeyFiles.length > 0, { message: 'needs jwksUrl or publicKeyFiles' });

/** Authentication and authorization settings (see auth/). */
export const authConfigSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** The `service` clients pass to the token endpoint and the tokens' `aud`. */
    service: z.string().min(1).default('berth'),
    /** `iss` of the tokens Berth signs. */
    issuer: z.string().min(1).default('berth'),
    /** Challenge realm; default `<http.publicUrl or request origin><tokenPath>`. */
    realm: z.string().url().optional(),
    tokenPath: z.string().startsWith('/').default('/auth/token'),
    jwksPath: z.string().startsWith('/').default('/auth/jwks.json'),
    /** Berth's own token endpoint; turn off when only an external issuer hands out tokens. */
    tokenService: z.boolean().default(true),
    tokenTtlSeconds: z.number().int().min(60).default(300),
    refreshTokenTtlSeconds: z.number().int().min(60).default(30 * 24 * 3600),
    /** Allowed clock skew when checking exp/nbf. */
    clockToleranceSeconds: z.number().int().min(0).max(300).default(30),
    signing: z
      .object({
        algorithm: z.enum(SIGNING_ALGORITHMS).default('ES256'),
        /** PKCS#8 PEM private key; when absent one is generated under <dataDir>/auth/keys and kept. */
        keyFile: z.string().min(1).optional(),
        keyDir: z.string().min(1).optional(),
        /** Generate a fresh key once the active one is this old (generated keys only). */
        rotateAfterDays: z.number().positive().optional(),
      })
      .strict()
      .prefault({}),
    /** htpasswd file with bcrypt entries (`htpasswd -B`); default <dataDir>/auth/htpasswd. */
    htpasswdFile: z.string().min(1).optional(),
    /** Robot accounts; default <dataDir>/auth/robots.json. */
    robotsFile: z.string().min(1).optional(),
    /** YAML file of `groups` and `rules`, reloaded when it changes. */
    rulesFile: z.string().min(1).optional(),
    /** Static groups: name → member principals (user names or robot+<name>). */
    groups: groupsSchema.default({}),
    /** Static rules, evaluated together with those in rulesFile. */
    rules: z.array(ruleSchema).default([]),
    /** Every user gets all actions on repositories under `<username>/`. */
    userNamespaces: z.boolean().default(false),
    externalIssuers: z.array(externalIssuerSchema).default([]),
    loginLimits: z
      .object({
        /** Failed logins per user name within the window before it is refused with 429. */
        perUser: z.number().int().min(1).default(5),
        /** Failed logins per client address within the window. */
        perAddress: z.number().int().min(1).default(20),
        windowSeconds: z.number().int().min(1).default(300),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type AuthConfig = z.infer<typeof authConfigSchema>;
export type AuthConfigInput = z.input<typeof authConfigSchema>;
export type ExternalIssuerConfig = z.infer<typeof externalIssuerSchema>;
