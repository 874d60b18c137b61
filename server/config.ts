import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { coerceEnvValue, configLeaves, type ConfigLeaf } from './config-leaves.js';
import { authConfigSchema } from '../auth/config.js';
import { s3ConfigSchema } from '../storage-drivers/blob/s3-config.js';
import { redisConfigSchema } from '../storage-drivers/metadata/redis-config.js';
import { eventsConfigSchema } from './registry/events/config.js';
import { immutableTagsConfigSchema } from './registry/immutable/config-schema.js';
import { proxyConfigSchema } from './registry/proxy/config.js';
import { quotaConfigSchema } from './registry/quotas/config.js';
import { replicationConfigSchema } from './registry/replication/config.js';
import { retentionPoliciesSchema } from './registry/retention/policy.js';

const MiB = 1024 * 1024;

export const configSchema = z
  .object({
    dataDir: z.string().min(1).default('./data').describe('Where the filesystem driver and the embedded store keep their data unless told otherwise.'),
    http: z
      .object({
        host: z.string().min(1).default('0.0.0.0').describe('Address to listen on.'),
        port: z.number().int().min(0).max(65535).default(5000).describe('Port to listen on (also `PORT`).'),
        publicUrl: z.string().url().optional().describe('The externally visible base URL, e.g. https://registry.example.com (used for token realms).'),
        trustProxy: z.boolean().default(false).describe('Take client addresses from X-Forwarded-For.'),
        tls: z
          .object({
            certFile: z.string().min(1).describe('PEM certificate chain; re-read on SIGHUP.'),
            keyFile: z.string().min(1).describe('PEM private key; re-read on SIGHUP.'),
          })
          .strict()
          .optional(),
        shutdownTimeoutSeconds: z.number().int().min(0).default(30).describe('How long SIGTERM waits for in-flight requests and uploads before closing.'),
        bodyTimeoutSeconds: z
          .number()
          .positive()
          .max(3600)
          .default(60)
          .describe('A request body (an upload chunk) that sends no byte for this long is cut with 408; the upload keeps what it received and can be resumed.'),
        workers: z
          .number()
          .int()
          .min(1)
          .max(64)
          .default(1)
          .describe(
            'Processes serving the port (node:cluster); set it to the number of cores for the highest request rate. With more than one, metrics are served aggregated on metrics.port (default 9100).',
          ),
      })
      .strict()
      .prefault({}),
    storage: z
      .object({
        driver: z.enum(['filesystem', 's3', 'memory']).default('filesystem').describe('Where blobs are kept.'),
        filesystem: z
          .object({
            root: z.string().min(1).optional().describe('Defaults to `<dataDir>/storage`.'),
            sendBufferBytes: z
              .number()
              .int()
              .min(0)
              .default(16 * MiB)
              .describe(
                'Memory all blob GETs of a process may hold in 1 MiB read buffers at once (two per GET of a blob over 1 MiB); GETs beyond it read 64 KiB at a time. Bounds RSS under many concurrent pulls.',
              ),
          })
          .strict()
          .prefault({}),
        s3: s3ConfigSchema.optional(),
        redirect: z.boolean().default(false).describe("Answer blob GETs with a 307 to the driver's URL (S3 presigned) when it has one."),
        sharedReads: z
          .object({
            enabled: z
              .boolean()
              .optional()
              .describe(
                'Concurrent full GETs of one large blob in a process share one storage read, spooled to a local file (see docs/storage-s3.md). Defaults to on for s3, off for filesystem and memory (reads there are cheap, and sendfile is faster).',
              ),
            minBytes: z
              .number()
              .int()
              .min(0)
              .default(1 * MiB)
              .describe('Blobs smaller than this are read per request.'),
            spoolDir: z.string().min(1).optional().describe('Where shared reads are spooled. Defaults to `<os tmpdir>/berth-spool`.'),
            maxSpoolBytes: z
              .number()
              .int()
              .min(0)
              .default(4 * 1024 * MiB)
              .describe('Spool space all shared reads of a process may hold at once; a read that does not fit is served unshared.'),
          })
          .strict()
          .prefault({}),
        verifyReads: z
          .enum(['always', 'first', 'small'])
          .default('first')
          .describe(
            'Which full reads are hashed before their last byte is sent (a mismatch cuts the response and quarantines the object; see docs/integrity.md). always: every one. first: objects up to verifySmallBytes always, larger blobs until one read was verified in this process. small: only objects up to verifySmallBytes (large blobs are left to scrub).',
          ),
        verifySmallBytes: z
          .number()
          .int()
          .min(0)
          .default(4 * MiB)
          .describe('Objects up to this size (manifests, configs, small layers) are hashed on every read.'),
        verifiedDigests: z
          .number()
          .int()
          .min(0)
          .default(100_000)
          .describe('How many verified large blobs one process remembers under verifyReads: first (oldest forgotten first).'),
        scrub: z
          .object({
            enabled: z.boolean().default(false).describe('Verify every stored blob and manifest in the background (like `berth scrub`).'),
            intervalSeconds: z.number().int().min(60).default(86_400).describe('Time between the starts of two background scrub passes.'),
            bytesPerSecond: z
              .number()
              .int()
              .min(1024)
              .default(50 * MiB)
              .describe('Read rate limit of a scrub (background, and `berth scrub` unless --rate is given).'),
            leaseSeconds: z
              .number()
              .int()
              .min(5)
              .default(120)
              .describe('A scrub holds a lease in metadata for this long and renews it while it runs, so processes sharing storage take turns.'),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    metadata: z
      .object({
        store: z.enum(['embedded', 'redis']).default('embedded').describe('Where tags, links and upload sessions are kept.'),
        embedded: z
          .object({ path: z.string().min(1).optional().describe('Defaults to `<dataDir>/metadata`.') })
          .strict()
          .prefault({}),
        redis: redisConfigSchema.optional(),
        coalesceTagLookups: z
          .boolean()
          .default(true)
          .describe(
            'Concurrent HEADs and GETs of one tag in a process share metadata lookups: a burst costs two round trips, and each answer is still as new as its request (no cached answers; see docs/performance.md).',
          ),
      })
      .strict()
      .prefault({}),
    gc: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe('Run garbage collection in the background in every process (passes are fenced per digest, so processes may overlap). See docs/gc.md.'),
        intervalSeconds: z.number().int().min(1).default(600).describe('Time between the starts of two background GC passes.'),
        delaySeconds: z
          .number()
          .int()
          .min(0)
          .default(3600)
          .describe(
            'A blob unreferenced and unused (no HEAD, GET, mount or upload) for this long is quarantined. 0 only for tests: a push that HEADs a blob and then references it may have to push it again.',
          ),
        quarantineSeconds: z
          .number()
          .int()
          .min(0)
          .default(86_400)
          .describe('Quarantined blobs keep their bytes this long before they are deleted for good; any use in between revives them.'),
        deleteUntagged: z.boolean().default(false).describe('Also delete manifests that no tag, index or subject keeps (after untaggedAgeSeconds).'),
        untaggedAgeSeconds: z.number().int().min(0).default(86_400).describe('How long a manifest stays untagged before deleteUntagged collects it.'),
        batch: z.number().int().min(1).default(1000).describe('At most this many queued items per pass; the rest waits for the next one.'),
        pinSeconds: z
          .number()
          .int()
          .min(1)
          .default(300)
          .describe("How long a push's pin on what it is about to reference counts if the process dies before releasing it."),
        leaseSeconds: z
          .number()
          .int()
          .min(5)
          .default(60)
          .describe('How long a deletion in progress is reserved for the process running it; another takes over after.'),
      })
      .strict()
      .prefault({}),
    stats: z
      .object({
        enabled: z.boolean().default(true).describe('Count pulls (manifest GETs) per repository and tag, with a daily series. See docs/pull-statistics.md.'),
        flushSeconds: z
          .number()
          .int()
          .min(1)
          .max(3600)
          .default(5)
          .describe('How often each process writes the pulls it counted to the metadata store (and so how late they show).'),
        pullDays: z.number().int().min(1).max(3660).default(90).describe('Days of daily pull counts kept, today included; totals are kept for good.'),
        flushEntries: z.number().int().min(1).default(10_000).describe('Flush sooner once this many distinct counts (repository, day, tag or digest) wait.'),
        maxPending: z
          .number()
          .int()
          .min(1)
          .default(100_000)
          .describe(
            'Distinct counts one process holds in memory, waiting or being retried; a pull needing one more is not counted (berth_pull_stats_dropped_total).',
          ),
        flushAttempts: z
          .number()
          .int()
          .min(1)
          .max(100)
          .default(5)
          .describe('A flush the metadata store refuses is tried again at the next flushes, this many attempts in all, then dropped and counted.'),
      })
      .strict()
      .prefault({}),
    quotas: quotaConfigSchema,
    retention: z
      .object({
        enabled: z
          .boolean()
          .default(false)
          .describe(
            'Run the retention policies in the background in every process (each repository is handled by one process at a time). See docs/retention.md.',
          ),
        intervalSeconds: z.number().int().min(1).default(3600).describe('Time between the starts of two background retention runs.'),
        batch: z
          .number()
          .int()
          .min(1)
          .default(100)
          .describe('At most this many repositories (with a policy) per run; the next run goes on after the last one, in any process.'),
        leaseSeconds: z
          .number()
          .int()
          .min(5)
          .default(60)
          .describe('A process handling a repository holds it this long, renewed while it deletes; another process skips it meanwhile.'),
        policies: retentionPoliciesSchema
          .default([])
          .describe(
            'Retention policies, the first matching a repository wins: keepLastPushed, keepLastPulled, keepPushedWithin, keepPulledWithin, keepTags; a tag is kept if any keep rule keeps it. See docs/retention.md.',
          ),
      })
      .strict()
      .prefault({}),
    events: eventsConfigSchema,
    proxy: proxyConfigSchema,
    replication: replicationConfigSchema,
    uploads: z
      .object({
        idleTimeoutSeconds: z.number().int().min(1).default(3600).describe('An upload untouched this long is cancelled and its data removed.'),
        sweepIntervalSeconds: z.number().int().min(1).default(60).describe('How often idle uploads are looked for.'),
        chunkMinLength: z.number().int().min(0).optional().describe('Advertised as OCI-Chunk-Min-Length.'),
        resumableHashing: z
          .union([z.literal('auto'), z.boolean()])
          .default('auto')
          .describe(
            'Hash Content-Range chunks with a SHA-256 whose state is saved in the session, so a chunk landing on another process needs no read-back (about 4x slower than OpenSSL). auto: on with Redis metadata or http.workers > 1.',
          ),
      })
      .strict()
      .prefault({}),
    manifests: z
      .object({
        maxBytes: z
          .number()
          .int()
          .min(1024)
          .default(4 * MiB)
          .describe('Largest manifest accepted.'),
        requireIndexChildren: z.boolean().default(true).describe('Refuse an index whose child manifests are not in the repository.'),
      })
      .strict()
      .prefault({}),
    immutableTags: immutableTagsConfigSchema,
    catalog: z
      .object({
        defaultEntries: z.number().int().min(1).default(100).describe('Page size when the client gives no `n`.'),
        maxEntries: z.number().int().min(1).default(1000).describe('Largest page size allowed.'),
      })
      .strict()
      .prefault({}),
    delete: z
      .object({ enabled: z.boolean().default(true).describe('Allow deleting manifests, tags and blobs.') })
      .strict()
      .prefault({}),
    readOnly: z.boolean().default(false).describe('Refuse every write with a clear error; pulls go on.'),
    ui: z
      .object({
        enabled: z.boolean().default(true).describe("Serve the web UI at /ui/ (and send / there). It uses the management API with the caller's own rights."),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Minimum level of the JSON log on stdout.'),
        access: z.boolean().default(true).describe('Write one access line per request.'),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        enabled: z.boolean().default(true).describe('Serve Prometheus metrics.'),
        path: z
          .string()
          .regex(/^\/[^\s?#]*$/, 'must be an absolute URL path')
          .default('/metrics')
          .describe('Where metrics are served.'),
        port: z.number().int().min(0).max(65535).optional().describe('Serve metrics on this separate port instead of the registry port.'),
        host: z.string().min(1).optional().describe('Address of the separate metrics listener; defaults to `http.host`.'),
        token: z.string().min(1).optional().describe('Require `Authorization: Bearer <token>` to read metrics.'),
        maxRepositoryLabels: z.number().int().min(0).default(200).describe("Repositories named in push/pull metrics; the rest are counted as 'other'."),
      })
      .strict()
      .prefault({}),
    audit: z
      .object({
        enabled: z.boolean().default(true).describe('Write the audit stream of security-relevant events.'),
        output: z.string().min(1).default('stdout').describe('`stdout`, or a file path the JSON lines are appended to.'),
      })
      .strict()
      .prefault({}),
    auth: authConfigSchema.optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.storage.driver === 's3' && !config.storage.s3) {
      ctx.addIssue({ code: 'custom', path: ['storage', 's3'], message: "required when storage.driver is 's3'" });
    }
    const { port } = config.metrics;
    if (port !== undefined && port !== 0 && port === config.http.port) {
      ctx.addIssue({ code: 'custom', path: ['metrics', 'port'], message: 'must differ from http.port (leave it unset to serve metrics on http.port)' });
    }
    if (!config.stats.enabled) {
      // Without pull counting every tag looks never pulled: a pull rule would delete tags still in use.
      config.retention.policies.forEach((policy, i) => {
        const rule = policy.keepPulledWithin !== undefined ? 'keepPulledWithin' : policy.keepLastPulled !== undefined ? 'keepLastPulled' : undefined;
        if (rule !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['retention', 'policies', i, rule],
            message: 'needs pull statistics, but stats.enabled is false: enable stats or drop the rule',
          });
      });
    }
  });

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
  return validate(input, new Map());
}

/** `origins` maps a dotted key to the environment variable that set it, so messages can name both. */
function validate(input: unknown, origins: Map<string, string>, earlier: string[] = []): BerthConfig {
  const result = configSchema.safeParse(input ?? {});
  if (result.success && earlier.length === 0) return result.data;
  const problems = [...earlier];
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = issue.path.join('.');
      if (issue.code === 'unrecognized_keys') {
        const prefix = key ? `${key}.` : '';
        problems.push(`unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${prefix}${k}'`).join(', ')}`);
        continue;
      }
      const origin = origins.get(key);
      problems.push(`${key || '(root)'}: ${issue.message}${origin ? ` (from ${origin})` : ''}`);
    }
  }
  throw new ConfigError(problems);
}

/** Environment variables starting with BERTH_ that are not configuration keys. */
const NON_CONFIG_ENV = new Set(['BERTH_CONFIG']);
const NON_CONFIG_ENV_PREFIXES = ['BERTH_TEST_'];

let leafIndex: Map<string, ConfigLeaf> | undefined;
/** BERTH_HTTP_PORT → the `http.port` leaf, for every key in the schema. */
export function configEnvVars(): Map<string, ConfigLeaf> {
  if (!leafIndex) {
    leafIndex = new Map();
    for (const leaf of configLeaves(configSchema)) {
      const clash = leafIndex.get(leaf.envName);
      if (clash) throw new Error(`${leaf.envName} would name both ${clash.path.join('.')} and ${leaf.path.join('.')}`);
      leafIndex.set(leaf.envName, leaf);
    }
  }
  return leafIndex;
}

/** Reads an optional YAML file (or BERTH_CONFIG), applies environment overrides, validates. */
export function loadConfig(options: { file?: string | undefined; env?: NodeJS.ProcessEnv | undefined } = {}): BerthConfig {
  const env = options.env ?? process.env;
  const file = options.file ?? env.BERTH_CONFIG;
  const raw = file ? readConfigFile(file) : {};
  const origins = new Map<string, string>();
  const problems = applyEnvOverrides(raw, env, origins);
  return validate(raw, origins, problems);
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read config file ${file}: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError([`config file ${file} is not valid YAML: ${(err as Error).message}`]);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError([`config file ${file} must hold a mapping`]);
  return raw as Record<string, unknown>;
}

function section(raw: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = raw[key];
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  const fresh: Record<string, unknown> = {};
  raw[key] = fresh;
  return fresh;
}

/**
 * PORT and BERTH_DATA_DIR are the short-hands scripts and platforms set; every other BERTH_<SECTION>_<KEY>
 * names a schema key (camelCase words split by underscores) and wins over the file. Returns the problems.
 */
function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, origins: Map<string, string>): string[] {
  const problems: string[] = [];
  const vars = configEnvVars();
  const set = (leaf: ConfigLeaf, name: string, text: string) => {
    const coerced = coerceEnvValue(leaf, text);
    if ('problem' in coerced) {
      problems.push(`${name}: ${coerced.problem}`);
      return;
    }
    let target = raw;
    for (const segment of leaf.path.slice(0, -1)) target = section(target, segment);
    target[leaf.path[leaf.path.length - 1]!] = coerced.value;
    origins.set(leaf.path.join('.'), name);
  };
  const portLeaf = vars.get('BERTH_HTTP_PORT');
  if (env.PORT !== undefined && env.PORT !== '' && portLeaf) set(portLeaf, 'PORT', env.PORT);
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('BERTH_') || NON_CONFIG_ENV.has(name)) continue;
    if (NON_CONFIG_ENV_PREFIXES.some((prefix) => name.startsWith(prefix))) continue;
    const value = env[name];
    if (value === undefined) continue;
    const leaf = vars.get(name);
    if (!leaf) {
      problems.push(`${name}: not a configuration variable (see docs/configuration.md for the BERTH_* names)`);
      continue;
    }
    // An empty variable means "not set" so compose files can leave a value blank.
    if (value === '') continue;
    set(leaf, name, value);
  }
  return problems;
}

export function resolvedPaths(config: BerthConfig): { storageRoot: string; metadataPath: string } {
  return {
    storageRoot: resolve(config.storage.filesystem.root ?? `${config.dataDir}/storage`),
    metadataPath: resolve(config.metadata.embedded.path ?? `${config.dataDir}/metadata`),
  };
}
