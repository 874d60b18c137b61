import { z } from 'zod';

/** S3-compatible storage settings. Placeholder until the S3 driver lands. */
export const s3ConfigSchema = z
  .object({
    bucket: z.string().min(1),
    region: z.string().min(1).default('us-east-1'),
    endpoint: z.string().url().optional(),
    forcePathStyle: z.boolean().default(false),
    prefix: z.string().default(''),
  })
  .strict();
export type S3Config = z.infer<typeof s3ConfigSchema>;
