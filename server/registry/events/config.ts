import { z } from 'zod';
import { tagPattern } from '../retention/policy.js';
import { actionPatternProblem } from './filter.js';
import { outboundUrl } from '../../config-sources.js';

/*
 * The `events` section of Berth's configuration (docs/events.md). Secrets are named here (a file or an
 * environment variable), never written here: resolveEndpoints reads them at start-up.
 */

export const EVENT_FORMATS = ['cloudevents', 'distribution'] as const;
export type EventFormat = (typeof EVENT_FORMATS)[number];

const ENDPOINT_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** RFC 9110 token characters: what a header name may hold. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers Berth sets itself; receivers rely on them, so the config may not replace them. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'host', 'user-agent', 'transfer-encoding', 'connection']);

const headerValue = z
  .string()
  // CR, LF and NUL would split or break the request.
  .refine((v) => !/[\r\n\0]/.test(v), { message: 'a header value may not hold line breaks' });

const headerSource = z.union([
  headerValue,
  z
    .object({
      valueEnv: z.string().regex(ENV_NAME, 'must be an environment variable name').describe('Take the value from this environment variable at start-up.'),
    })
    .strict(),
]);

// URLs appear in logs, statuses and `berth events`; credentials belong in headers.
const endpointUrl = outboundUrl({ credentials: 'send them as a header (headers: { Authorization: { valueEnv: NAME } })' });

const actionPattern = z.string().superRefine((text, ctx) => {
  const problem = actionPatternProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const mediaTypePattern = z
  .string()
  .min(1)
  .refine((text) => !text.slice(0, -1).includes('*'), { message: 'a media type pattern may only end in `*` (e.g. application/vnd.oci.image.*)' });

export const endpointConfigSchema = z
  .object({
    name: z
      .string()
      .regex(ENDPOINT_NAME, 'must be lowercase letters, digits and "-" (not at either end), at most 64 characters')
      .describe('Names the endpoint in metrics, logs, `berth events` and its stored cursor; renaming it starts a new cursor.'),
    url: endpointUrl.describe('Where events are POSTed (http or https).'),
    format: z.enum(EVENT_FORMATS).default('cloudevents').describe('cloudevents (CloudEvents 1.0 JSON) or distribution (the envelope distribution sends).'),
    secretFile: z.string().min(1).optional().describe('File with the signing secret(s), one per line; every one signs, for rotation.'),
    secretEnv: z
      .string()
      .regex(ENV_NAME, 'must be an environment variable name')
      .optional()
      .describe('Environment variable with the signing secret(s), one per line.'),
    headers: z
      .record(z.string(), headerSource)
      .default({})
      .describe('Static headers: a value, or { valueEnv: NAME } to read it from the environment at start-up.'),
    actions: z.array(actionPattern).optional().describe('Only these actions: names (manifest.pushed), families (tag.*) or *.'),
    repositories: z.array(z.string().min(1)).optional().describe('Only repositories matching one of these globs (team/**).'),
    tags: z.array(tagPattern).optional().describe('Only events naming a tag that matches one of these globs or /regexes/.'),
    mediaTypes: z.array(mediaTypePattern).optional().describe('Only events whose media type is one of these (a trailing * matches a prefix).'),
    timeoutSeconds: z.number().positive().max(300).default(10).describe('One delivery attempt: connecting, sending and the response.'),
    maxAttempts: z.number().int().min(1).max(1000).default(12).describe('Attempts for one event before it goes to the dead-letter list.'),
    backoff: z
      .object({
        initialSeconds: z.number().positive().default(1).describe('Wait after the first failed attempt; doubled after each further one.'),
        maxSeconds: z.number().positive().default(300).describe('Longest wait between attempts (a Retry-After longer than this is cut to it).'),
      })
      .strict()
      .refine((b) => b.initialSeconds <= b.maxSeconds, { message: 'initialSeconds must not exceed maxSeconds' })
      .prefault({}),
    concurrency: z.number().int().min(1).max(64).default(4).describe('Repositories delivered in parallel (events of one repository go in order).'),
    maxDeadLetters: z.number().int().min(0).default(10_000).describe('Dead letters kept for the endpoint; the oldest go first.'),
    caFile: z.string().min(1).optional().describe('PEM CA certificate(s) to trust for an https URL, instead of the system ones.'),
  })
  .strict()
  .superRefine((endpoint, ctx) => {
    if (endpoint.secretFile !== undefined && endpoint.secretEnv !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['secretEnv'], message: 'give secretFile or secretEnv, not both' });
    }
    const seen = new Set<string>();
    for (const name of Object.keys(endpoint.headers)) {
      const lower = name.toLowerCase();
      if (!HEADER_NAME.test(name)) ctx.addIssue({ code: 'custom', path: ['headers', name], message: 'not a valid header name' });
      else if (RESERVED_HEADERS.has(lower) || lower.startsWith('berth-'))
        ctx.addIssue({ code: 'custom', path: ['headers', name], message: 'set by Berth itself (Content-Type, User-Agent, Berth-*): it cannot be configured' });
      else if (seen.has(lower)) ctx.addIssue({ code: 'custom', path: ['headers', name], message: 'given twice (header names ignore case)' });
      seen.add(lower);
    }
    if (endpoint.caFile !== undefined && !endpoint.url.startsWith('https:')) {
      ctx.addIssue({ code: 'custom', path: ['caFile'], message: 'only used for https URLs' });
    }
  });

export type EndpointConfig = z.output<typeof endpointConfigSchema>;

export const eventsConfigSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Record every change in the event outbox, in the same atomic step as the change (see docs/events.md).'),
    maxEvents: z.number().int().min(100).default(100_000).describe('Records the outbox keeps; past it the oldest are dropped (berth_events_dropped_total).'),
    pulls: z
      .enum(['off', 'aggregated', 'each'])
      .default('off')
      .describe('Pull events: off, aggregated (pulls.counted per repository and interval) or each (manifest.pulled per pull).'),
    deliver: z
      .boolean()
      .default(true)
      .describe('This process delivers to the endpoints (any number of processes may; each endpoint is delivered by one at a time).'),
    pollIntervalMs: z.number().int().min(10).max(60_000).default(500).describe('How often a delivering process looks for new records when it has none.'),
    leaseSeconds: z
      .number()
      .min(0.2)
      .max(600)
      .default(30)
      .describe('How long a process holds an endpoint; renewed while it delivers. A process that dies mid-delivery leaves the endpoint to another after this.'),
    batchSize: z.number().int().min(1).max(10_000).default(100).describe('Records a delivering process takes from the log at a time.'),
    pullIntervalSeconds: z
      .number()
      .int()
      .min(1)
      .max(86_400)
      .default(60)
      .describe('With pulls: aggregated, one pulls.counted event per repository per this interval.'),
    source: z.string().min(1).optional().describe('CloudEvents `source`; defaults to `berth://<host of http.publicUrl>`, or `berth` without a public URL.'),
    endpoints: z
      .array(endpointConfigSchema)
      .superRefine((endpoints, ctx) => {
        const seen = new Set<string>();
        endpoints.forEach((endpoint, i) => {
          if (seen.has(endpoint.name))
            ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `endpoint name ${JSON.stringify(endpoint.name)} is used twice` });
          seen.add(endpoint.name);
        });
      })
      .default([])
      .describe('Webhook endpoints: [{ name, url, format, secretFile | secretEnv, headers, actions, repositories, tags, mediaTypes, … }]. See docs/events.md.'),
  })
  .strict()
  .prefault({});

export type EventsConfig = z.output<typeof eventsConfigSchema>;
