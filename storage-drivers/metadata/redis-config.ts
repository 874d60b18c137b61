import { z } from 'zod';

/** Redis metadata settings. Placeholder until the Redis store lands. */
export const redisConfigSchema = z
  .object({
    url: z.string().min(1).default('redis://127.0.0.1:6379'),
    keyPrefix: z.string().default('berth:'),
  })
  .strict();
export type RedisConfig = z.infer<typeof redisConfigSchema>;
