import { z } from 'zod';

const redisUrl = z.string().regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL');

const hostPort = z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535).default(26379) }).strict();

/**
 * Redis metadata settings. Exactly one way to reach Redis: `url` (a single server), `sentinel`
 * (a Sentinel-managed primary) or `cluster` (Redis Cluster seed nodes); with none, redis://127.0.0.1:6379.
 */
export const redisConfigSchema = z
  .object({
    url: redisUrl.optional().describe('redis://[user:pass@]host:port[/db], or rediss:// for TLS.'),
    username: z.string().min(1).optional().describe('ACL user name (Redis 6+).'),
    password: z.string().min(1).optional().describe('Password (AUTH).'),
    db: z.number().int().min(0).max(15).optional().describe('Database number; Cluster has only 0.'),
    keyPrefix: z
      .string()
      .regex(/^[^{}\s]*$/, 'must not contain braces or spaces')
      .default('berth:')
      .describe('Prepended to every key; braces are reserved for the Cluster hash tags Berth adds.'),
    tls: z
      .object({
        caFile: z.string().min(1).optional().describe('PEM file of the CA that signed the Redis certificate.'),
        certFile: z.string().min(1).optional().describe('Client certificate (PEM) for mutual TLS.'),
        keyFile: z.string().min(1).optional().describe('Client key (PEM) for mutual TLS.'),
        rejectUnauthorized: z.boolean().default(true).describe('Refuse certificates the CA does not vouch for.'),
        servername: z.string().min(1).optional().describe('Name to expect in the certificate (SNI).'),
      })
      .strict()
      .optional()
      .describe('TLS settings; present = TLS on (a rediss:// url turns it on by itself).'),
    sentinel: z
      .object({
        name: z.string().min(1).describe("The primary's name as the Sentinels know it."),
        sentinels: z.array(hostPort).min(1).describe('Sentinel addresses: [{ host, port }].'),
        username: z.string().min(1).optional().describe('ACL user name for the Sentinels.'),
        password: z.string().min(1).optional().describe('Password for the Sentinels.'),
      })
      .strict()
      .optional(),
    cluster: z
      .object({ nodes: z.array(redisUrl).min(1).describe('Seed node URLs of the Redis Cluster.') })
      .strict()
      .optional(),
    commandTimeoutMs: z.number().int().min(1).default(2000).describe('A command not answered within this time fails (503) instead of hanging.'),
    connectTimeoutMs: z.number().int().min(1).default(5000).describe('Bound on opening a connection, and on how long start-up waits for the first one.'),
  })
  .strict()
  .superRefine((value, ctx) => {
    const modes = (['url', 'sentinel', 'cluster'] as const).filter((k) => value[k] !== undefined);
    if (modes.length > 1) {
      ctx.addIssue({ code: 'custom', path: [modes[1] as string], message: `set only one of url, sentinel, cluster (got ${modes.join(', ')})` });
    }
    if (value.cluster !== undefined && value.db !== undefined && value.db !== 0) {
      ctx.addIssue({ code: 'custom', path: ['db'], message: 'Redis Cluster has only database 0' });
    }
  });
export type RedisConfig = z.infer<typeof redisConfigSchema>;
export type RedisConfigInput = z.input<typeof redisConfigSchema>;
