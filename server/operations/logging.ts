import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { LOG_REDACT_PATHS } from '../../auth/redact.js';
import type { BerthConfig } from '../config.js';
import { stdoutLines } from './stdout-batch.js';
import { installTrafficCounter, onRequestComplete, trafficOf } from './body-bytes.js';

/** Anything pino can write lines to; tests pass one to capture the log. */
export interface LogDestination {
  write(line: string): void;
}

const REQUEST_ID = /^[A-Za-z0-9._:@+=-]{1,128}$/;

/** Keeps a caller's X-Request-Id when it is short and plain, so ids can be followed across proxies. */
export function genReqId(req: IncomingMessage): string {
  const incoming = req.headers['x-request-id'];
  if (typeof incoming === 'string' && REQUEST_ID.test(incoming)) return incoming;
  return randomUUID();
}

const SECRET_FIELDS = ['password', 'token', 'secret', 'secretAccessKey', 'accessToken', 'refreshToken', 'clientSecret'];

/**
 * pino redact paths: credentials in headers and any password- or token-like field up to two levels
 * deep. (A third, `*.*.x`, level cost about a tenth of the small-request rate on its own.)
 */
export const REDACT_PATHS = [...LOG_REDACT_PATHS, ...SECRET_FIELDS.flatMap((f) => [f, `*.${f}`])];

const SECRET_QUERY_KEY = /token|password|secret|signature|credential|key/i;

/** The URL as logged: query values whose names suggest a secret (tokens, presigned signatures) are hidden. */
export function loggableUrl(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return url;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return pair;
      let name = pair.slice(0, eq);
      try {
        name = decodeURIComponent(name);
      } catch {
        // A malformed name is matched as sent.
      }
      return SECRET_QUERY_KEY.test(name) ? `${pair.slice(0, eq)}=[redacted]` : pair;
    })
    .join('&');
  return `${url.slice(0, q)}?${query}`;
}

/**
 * Fastify's own per-request lines (incoming, completed, route not found) are replaced by the single
 * access line; errors the default handler sees are kept for 5xx only, since 4xx answers (missing blobs,
 * auth challenges) are ordinary registry traffic already visible in the access line.
 */
export class BerthLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'requestId' });
  }
  override incomingRequest(): void {}
  override requestCompleted(): void {}
  override routeNotFound(): void {}
  override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (reply.statusCode >= 500) super.defaultErrorLog(error, request, reply, metadata);
  }
}

/**
 * Options to spread into `Fastify({...})`: JSON lines with an ISO time, the request id as `requestId`
 * on every line of a request, secrets redacted, and Fastify's two lines per request turned off in
 * favour of the single access line written by `accessLogPlugin`.
 */
export function loggerOptions(
  config: Pick<BerthConfig, 'log'>,
  destination?: LogDestination,
): Pick<FastifyServerOptions, 'logger' | 'genReqId' | 'logController'> {
  return {
    logger: {
      level: config.log.level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: () => `,"time":"${new Date().toISOString()}"`,
      formatters: { level: (label: string) => ({ level: label }) },
      stream: destination ?? stdoutLines,
    },
    genReqId,
    logController: new BerthLogController(),
  };
}

/**
 * Echoes the request id in X-Request-Id and writes one access line per request when it finishes.
 * Registered on the root instance (no encapsulation) so it sees every route, 404s included.
 */
export async function accessLogPlugin(app: FastifyInstance, options: { config: Pick<BerthConfig, 'log'> }): Promise<void> {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  if (!options.config.log.access) return;
  installTrafficCounter(app);
  onRequestComplete(app, (request, reply, completion) => {
    const { received, sent } = trafficOf(request);
    request.log.info(
      {
        method: request.method,
        url: loggableUrl(request.originalUrl),
        status: completion.status,
        durationMs: Math.round(reply.elapsedTime * 1000) / 1000,
        bytesIn: received,
        bytesOut: sent,
        clientAddress: request.ip,
        userAgent: request.headers['user-agent'],
        // A response cut short (client gone, stream error) is worth telling apart from a complete one.
        ...(completion.aborted ? { aborted: true } : {}),
      },
      'request',
    );
  });
}
(accessLogPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
