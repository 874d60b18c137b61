import { z } from 'zod';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Same alphabet as storage keys, so the prefix can never produce a key the driver would reject. */
const PREFIX = /^([A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*)?$/;

/** Presigned-URL redirects for blob GETs (the HTTP layer answers 307 when the driver gives a URL). */
const redirectSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** Lifetime of a presigned URL. SigV4 allows at most 7 days; temporary credentials cap it further. */
    expiresSeconds: z.number().int().min(60).max(7 * 24 * 3600).default(1200),
    /**
     * How long one signed URL is handed out again before a new one is signed. Defaults to the lifetime
     * minus a margin so a client redirected at the last moment still has time to fetch.
     */
    cacheSeconds: z.number().int().min(0).optional(),
  })
  .strict();

/** S3-compatible storage settings (AWS S3, MinIO, Ceph RGW, R2, SeaweedFS, Garage, ...). */
export const s3ConfigSchema = z
  .object({
    bucket: z.string().min(1),
    region: z.string().min(1).default('us-east-1'),
    /** Custom endpoint for non-AWS stores, e.g. http://minio:9000. Unset: AWS's regional endpoint. */
    endpoint: z.url().optional(),
    /** Path-style URLs (endpoint/bucket/key); most self-hosted stores need this. */
    forcePathStyle: z.boolean().default(false),
    /** Static keys; when absent the SDK's default chain (env, profile, IMDS, web identity) is used. */
    credentials: z
      .object({
        accessKeyId: z.string().min(1),
        secretAccessKey: z.string().min(1),
        sessionToken: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    /** Key prefix inside the bucket, without leading or trailing slash. */
    prefix: z.string().regex(PREFIX, 'prefix must be "/"-separated [A-Za-z0-9._-] segments').default(''),
    /** Server-side encryption: SSE-S3 (AES256) or SSE-KMS (aws:kms, optionally with kmsKeyId). */
    sse: z.enum(['AES256', 'aws:kms']).optional(),
    kmsKeyId: z.string().min(1).optional(),
    /** Storage class for committed objects (temporary upload objects always use the default class). */
    storageClass: z.string().min(1).optional(),
    /** Longest a request may sit with no bytes moving before it is abandoned (and retried). */
    requestTimeoutMs: z.number().int().positive().default(120_000),
    connectTimeoutMs: z.number().int().positive().default(10_000),
    /** Attempts per request, with the SDK's backoff; covers SlowDown, throttling and 5xx. */
    maxAttempts: z.number().int().min(1).max(20).default(5),
    maxSockets: z.number().int().positive().default(128),
    /**
     * 'when_required' sends checksums only where S3 demands them (DeleteObjects). 'when_supported' also
     * sends streamed uploads with aws-chunked checksums, which many S3-compatible stores mishandle.
     */
    checksum: z.enum(['when_required', 'when_supported']).default('when_required'),
    /** Size of the first multipart parts; parts grow for big blobs so 10,000 parts reach 5 TiB. */
    partSizeBytes: z
      .number()
      .int()
      .min(5 * MiB)
      .max(5 * GiB)
      .default(16 * MiB),
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
