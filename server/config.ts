import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { authConfigSchema } from '../auth/config.js';
import { s3ConfigSchema } from '../storage-drivers/blob/s3-config.js';
import { redisConfigSchema } from '../storage-drivers/metadata/redis-config.js';

const MiB = 1024 * 1024;

export const configSchema = z
  .object({
    /** Where the filesystem driver and the embedded store keep their data unless told otherwise. */
    dataDir: z.string().min(1).default('./data'),
    http: z
      .object({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(5000),
        /** The externally visible base URL, e.g. https://registry.example.com (used for token realms). */
        publicUrl: z.string().url().optional(),
        trustProxy: z.boolean().default(false),
        tls: z
          .object({ certFile: z.string().min(1), keyFile: z.string().min(1) })
          .strict()
          .optional(),
        /** How long SIGTERM waits for in-flight requests before closing. */
        shutdownTimeoutSeconds: z.number().int().min(0).default(30),
      })
      .strict()
      .prefault({}),
    storage: z
      .object({
        driver: z.enum(['filesystem', 's3', 'memory']).default('filesystem'),
        filesystem: z.object({ root: z.string().min(1).optional() }).strict().prefault({}),
        s3: s3ConfigSchema.optional(),
        /** Answer blob GETs with a 307 to the driver's URL (S3 presigned) when it has one. */
        redirect: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    metadata: z
      .object({
        store: z.enum(['embedded', 'redis']).default('embedded'),
        embedded: z.object({ path: z.string().min(1).optional() }).strict().prefault({}),
        redis: redisConfigSchema.optional(),
      })
      .strict()
      .prefault({}),
    uploads: z
      .object({
        /** An upload untouched this long is cancelled and its data removed. */
        idleTimeoutSeconds: z.number().int().min(1).default(3600),
        sweepIntervalSeconds: z.number().int().min(1).default(60),
        /** Advertised as OCI-Chunk-Min-Length. */
        chunkMinLength: z.number().int().min(0).optional(),
      })
      .strict()
      .prefault({}),
    manifests: z
      .object({
        maxBytes: z.number().int().min(1024).default(4 * MiB),
        /** Refuse an index whose child manifests are not in the repository. */
        requireIndexChildren: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    catalog: z
      .object({
        defaultEntries: z.number().int().min(1).default(100),
        maxEntries: z.number().int().min(1).default(1000),
      })
      .strict()
      .prefault({}),
    delete: z.object({ enabled: z.boolean().default(true) }).strict().prefault({}),
    /** Refuse every write with a clear error; pulls go on. */
    readOnly: z.boolean().default(false),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
    auth: authConfigSchema.optional(),
  })
  .strict();

export type BerthConfig = z.infer<typeof configSchema>;
export type BerthConfigInput = z.input<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Validates a config object; throws ConfigError with one line per problem, each naming its key. */
export function parseConfig(input: unknown): BerthConfig {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const key = issue.path.join('.') || '(root)';
        if (issue.code === 'unrecognized_keys') {
          const prefix = issue.path.length ? `${issue.path.join('.')}.` : '';
          return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${prefix}${k}'`).join(', ')}`;
        }
        return `${key}: ${issue.message}`;
      }),
    );
  }
  return result.data;
}

/** Reads an optional YAML file, applies environment overrides, validates. */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv } = {}): BerthConfig {
  const env = options.env ?? process.env;
  let raw: Record<string, unknown> = {};
  const file = options.file ?? env.BERTH_CONFIG;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`cannot read config file ${file}: ${(err as Error).message}`]);
    }
    try {
      raw = (parseYaml(text) as Record<string, unknown> | null) ?? {};
    } catch (err) {
      throw new ConfigError([`config file ${file} is not valid YAML: ${(err as Error).message}`]);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError([`config file ${file} must hold a mapping`]);
  }
  applyEnvOverrides(raw, env);
  return parseConfig(raw);
}

function section(raw: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = raw[key];
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  const fresh: Record<string, unknown> = {};
  raw[key] = fresh;
  return fresh;
}

function envNumber(name: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new ConfigError([`${name}: expected a whole number, got ${JSON.stringify(value)}`]);
  return Number(value);
}

/** The short-hand variables scripts and tests rely on. */
function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  if (env.PORT !== undefined && env.PORT !== '') section(raw, 'http').port = envNumber('PORT', env.PORT);
  if (env.BERTH_DATA_DIR) raw.dataDir = env.BERTH_DATA_DIR;
}

export function resolvedPaths(config: BerthConfig): { storageRoot: string; metadataPath: string } {
  return {
    storageRoot: resolve(config.storage.filesystem.root ?? `${config.dataDir}/storage`),
    metadataPath: resolve(config.metadata.embedded.path ?? `${config.dataDir}/metadata`),
  };
}
