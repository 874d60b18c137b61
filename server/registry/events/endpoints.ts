import { readFileSync } from 'node:fs';
import type http from 'node:http';
import { ConfigError } from '../../config.js';
import type { BackoffPolicy } from './backoff.js';
import type { EndpointConfig, EventFormat, EventsConfig } from './config.js';
import { compileFilter, type EventFilter, type EventFilterSpec } from './filter.js';
import { endpointAgent } from './sender.js';
import { fileProblem, readCaFile } from '../../config-sources.js';

/*
 * The endpoints of the configuration, resolved once at start-up: secrets and header values read,
 * filters compiled, one keep-alive agent each. Secrets and header values are kept off the object's
 * enumerable properties, so logging, JSON.stringify or util.inspect of an endpoint never shows them.
 */

export interface EventEndpoint {
  readonly name: string;
  readonly url: string;
  readonly format: EventFormat;
  readonly filterSpec: EventFilterSpec;
  readonly filter: EventFilter;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly backoff: BackoffPolicy;
  readonly concurrency: number;
  readonly maxDeadLetters: number;
  /** Header names only, for logs and `berth events` (the values may be credentials). */
  readonly headerNames: readonly string[];
  /** True when bodies are signed. */
  readonly signed: boolean;
  /** The signing secrets (non-enumerable): every one signs. Never log them. */
  readonly secrets: readonly string[];
  /** The static headers with their values (non-enumerable). Never log them. */
  readonly headers: Readonly<Record<string, string>>;
  /** Kept per endpoint so deliveries reuse connections; closeEndpoints destroys it. */
  readonly agent: http.Agent;
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv | undefined;
  /** Reads secret and CA files; tests may read from elsewhere. */
  readFile?: ((path: string) => string) | undefined;
}

function splitSecrets(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

interface Sources {
  env: NodeJS.ProcessEnv;
  readFile: (path: string) => string;
}

function resolveOne(config: EndpointConfig, key: string, options: Sources, problems: string[]): EventEndpoint | undefined {
  const where = (field: string) => `${key}.${field} (endpoint ${JSON.stringify(config.name)})`;
  const before = problems.length;
  let secrets: string[] = [];
  if (config.secretFile !== undefined) {
    try {
      secrets = splitSecrets(options.readFile(config.secretFile));
      if (secrets.length === 0) problems.push(`${where('secretFile')}: ${config.secretFile} holds no secret (one per line)`);
    } catch (err) {
      problems.push(`${where('secretFile')}: cannot read ${config.secretFile}: ${fileProblem(err)}`);
    }
  } else if (config.secretEnv !== undefined) {
    const value = options.env[config.secretEnv];
    if (value === undefined || value.trim() === '') problems.push(`${where('secretEnv')}: environment variable ${config.secretEnv} is not set`);
    else secrets = splitSecrets(value);
  }
  const headers: Record<string, string> = {};
  for (const [name, source] of Object.entries(config.headers)) {
    if (typeof source === 'string') {
      headers[name] = source;
      continue;
    }
    const value = options.env[source.valueEnv];
    if (value === undefined || value === '') problems.push(`${where(`headers.${name}`)}: environment variable ${source.valueEnv} is not set`);
    else if (/[\r\n\0]/.test(value)) problems.push(`${where(`headers.${name}`)}: environment variable ${source.valueEnv} holds a line break`);
    else headers[name] = value;
  }
  const ca = config.caFile === undefined ? undefined : readCaFile(config.caFile, where('caFile'), options.readFile, problems);
  if (problems.length > before) return undefined;

  const filterSpec: EventFilterSpec = {
    actions: config.actions,
    repositories: config.repositories,
    tags: config.tags,
    mediaTypes: config.mediaTypes,
  };
  const endpoint = {
    name: config.name,
    url: config.url,
    format: config.format,
    filterSpec,
    filter: compileFilter(filterSpec),
    timeoutMs: Math.round(config.timeoutSeconds * 1000),
    maxAttempts: config.maxAttempts,
    backoff: { initialMs: Math.round(config.backoff.initialSeconds * 1000), maxMs: Math.round(config.backoff.maxSeconds * 1000) },
    concurrency: config.concurrency,
    maxDeadLetters: config.maxDeadLetters,
    headerNames: Object.keys(headers),
    signed: secrets.length > 0,
  };
  Object.defineProperties(endpoint, {
    secrets: { value: Object.freeze(secrets), enumerable: false },
    headers: { value: Object.freeze(headers), enumerable: false },
    // Not secret, but an agent's sockets make a log line enormous.
    agent: { value: endpointAgent(config.url, { ca, maxSockets: config.concurrency }), enumerable: false },
  });
  return endpoint as unknown as EventEndpoint;
}

/**
 * Resolves every configured endpoint. Throws a ConfigError with one line per problem, each naming the
 * endpoint and the file or variable that is missing (never a secret's value).
 */
export function resolveEndpoints(events: Pick<EventsConfig, 'endpoints'>, options: ResolveOptions = {}): EventEndpoint[] {
  const resolved: Sources = {
    env: options.env ?? process.env,
    readFile: options.readFile ?? ((path) => readFileSync(path, 'utf8')),
  };
  const problems: string[] = [];
  const out: EventEndpoint[] = [];
  events.endpoints.forEach((config, i) => {
    const endpoint = resolveOne(config, `events.endpoints.${i}`, resolved, problems);
    if (endpoint) out.push(endpoint);
  });
  if (problems.length > 0) {
    closeEndpoints(out);
    throw new ConfigError(problems);
  }
  return out;
}

/** Closes the endpoints' kept connections (at shutdown). */
export function closeEndpoints(endpoints: readonly EventEndpoint[]): void {
  for (const endpoint of endpoints) endpoint.agent.destroy();
}
