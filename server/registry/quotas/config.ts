import { z } from 'zod';

const MiB = 1024 * 1024;

const UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
  TIB: 1024 ** 4,
};

/** "10GiB", "500 MB", "1.5TiB" or a plain number of bytes; undefined when it is none of these. */
export function parseByteSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!match) return undefined;
  const unit = UNITS[(match[2] || 'B').toUpperCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const byteSize = z.union([z.number().int().min(0), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const bytes = parseByteSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a size: give bytes, or a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB` });
    return z.NEVER;
  }
  return bytes;
});

export const quotaRuleSchema = z
  .object({
    namespace: z.string().min(1).describe("A glob over namespaces (a repository name's first segment): `*`, `team-*`, `alpine`."),
    limitBytes: byteSize.describe('Stored bytes allowed: a number, or a string like "10GiB".'),
  })
  .strict();

export type QuotaRule = z.infer<typeof quotaRuleSchema>;

/** The `quotas` section of Berth's configuration (see docs/quotas.md). */
export const quotaConfigSchema = z
  .object({
    rules: z
      .array(quotaRuleSchema)
      .default([])
      .describe(
        'Storage limits per namespace, `[{ namespace: <glob>, limitBytes: <bytes or "10GiB"> }]`; the first matching rule wins, no rule: unlimited. See docs/quotas.md.',
      ),
    reserveStepBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(8 * MiB)
      .describe(
        'An upload without a declared length reserves room in its namespace in steps of this many bytes as it streams (one with a length reserves it whole).',
      ),
    reservationSeconds: z
      .number()
      .int()
      .min(5)
      .default(120)
      .describe("How long an upload's reservation counts after its last renewal (a crashed process's bytes are freed after this)."),
    metricsNamespaces: z.number().int().min(0).default(100).describe('At most this many namespaces (those matching a rule) are labelled in the quota metrics.'),
  })
  .strict()
  .prefault({});

export type QuotaConfig = z.infer<typeof quotaConfigSchema>;
