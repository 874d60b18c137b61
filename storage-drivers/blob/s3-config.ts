import { z } from 'zod';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Parts of 8 MiB: two held per upload in memory, and 10,000 of them still reach 78 GiB before parts grow. */
export const S3_DEFAULT_PART_BYTES = 8 * MiB;

/** Same alphabet as storage keys, so the prefix can never produce a key the driver would reject. */
const PREFIX = /^([A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*)?$/;

/** Presigned-URL redirects for blob GETs (the HTTP layer answers 307 when the driver gives a URL). */
const redirectSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Let blob GETs be redirected to presigned S3 URLs (also needs `storage.redirect`).'),
    expiresSeconds: z
      .number()
      .int()
      .min(60)
      .max(7 * 24 * 3600)
      .default(1200)
      .describe('Lifetime of a presigned URL (at most 7 days; temporary credentials may end it sooner).'),
    cacheSeconds: z.number().int().min(0).optional().describe('How long one signed URL is reused; default: the lifetime minus a tenth (at least a minute).'),
  })
  .strict();

/** S3-compatible storage settings (AWS S3, MinIO, Ceph RGW, R2, SeaweedFS, Garage, ...). */
export const s3ConfigSchema = z
  .object({
    bucket: z.string().min(1).describe('Bucket holding blobs, manifests and in-progress uploads.'),
    region: z.string().min(1).default('us-east-1').describe('Region to sign for (R2: `auto`).'),
    endpoint: z.url().optional().describe("Custom endpoint for non-AWS stores, e.g. http://minio:9000; unset: AWS's."),
    forcePathStyle: z.boolean().default(false).describe('Path-style URLs (endpoint/bucket/key); most self-hosted stores need it.'),
    credentials: z
      .object({
        accessKeyId: z.string().min(1).describe('Static access key.'),
        secretAccessKey: z.string().min(1).describe('Static secret key.'),
        sessionToken: z.string().min(1).optional().describe('Session token for temporary keys.'),
      })
      .strict()
      .optional()
      .describe("Static keys; when absent the AWS SDK's default chain (env, profile, IMDS, web identity) is used."),
    prefix: z
      .string()
      .regex(PREFIX, 'prefix must be "/"-separated [A-Za-z0-9._-] segments')
      .default('')
      .describe('Key prefix inside the bucket, without leading or trailing slash.'),
    sse: z.enum(['AES256', 'aws:kms']).optional().describe('Server-side encryption: SSE-S3 (AES256) or SSE-KMS (aws:kms).'),
    kmsKeyId: z.string().min(1).optional().describe("KMS key for `sse: aws:kms` (default: the account's S3 key)."),
    storageClass: z.string().min(1).optional().describe('Storage class of finished objects; temporary upload objects keep the default class.'),
    requestTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(120_000)
      .describe('Longest a request may sit with no bytes moving before it is abandoned (and retried).'),
    connectTimeoutMs: z.number().int().positive().default(10_000).describe('Longest a connection attempt may take.'),
    maxAttempts: z
      .number()
      .int()
      .min(1)
      .max(20)
      .default(5)
      .describe('Attempts per request, with backoff; covers SlowDown, throttling, 5xx and dropped connections.'),
    maxSockets: z.number().int().positive().default(128).describe('Concurrent connections to the store per process.'),
    checksum: z
      .enum(['when_required', 'when_supported'])
      .default('when_required')
      .describe('Request checksums only where S3 demands them, or on every upload (AWS; aws-chunked breaks many other stores).'),
    partSizeBytes: z
      .number()
      .int()
      .min(5 * MiB)
      .max(5 * GiB)
      .default(S3_DEFAULT_PART_BYTES)
      .describe('Size of the first multipart parts (about two are held in memory per upload); parts grow for huge blobs so 10,000 parts reach 5 TiB.'),
    bufferPoolBytes: z
      .number()
      .int()
      .min(0)
      .default(32 * MiB)
      .describe(
        'Memory a process may hold in reused 1 MiB buffers for the parts being uploaded and the GETs being sent (two buffers each); beyond it they use 64 KiB buffers of their own. Bounds RSS under many concurrent pushes.',
      ),
    redirect: redirectSchema.prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.kmsKeyId !== undefined && config.sse !== 'aws:kms') {
      ctx.addIssue({ code: 'custom', path: ['kmsKeyId'], message: 'kmsKeyId needs sse: aws:kms' });
    }
    const { cacheSeconds, expiresSeconds } = config.redirect;
    if (cacheSeconds !== undefined && cacheSeconds >= expiresSeconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['redirect', 'cacheSeconds'],
        message: 'cacheSeconds must be shorter than expiresSeconds',
      });
    }
  });
export type S3Config = z.infer<typeof s3ConfigSchema>;
export type S3ConfigInput = z.input<typeof s3ConfigSchema>;
