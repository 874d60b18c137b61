import http from 'node:http';
import https from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { S3Config } from './s3-config.js';

/**
 * The SDK warns on every start under Node 20 that its future releases need Node 22. Berth pins the SDK
 * and says itself which Node versions it supports (server/operations/node-support.ts), so the SDK's own switch
 * turns that warning off, unless the operator set the variable either way.
 */
const SDK_NODE_WARNING = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED';

/** An S3 client configured from Berth's settings: timeouts, retries, sockets, checksum mode. */
export function createS3Client(config: S3Config): S3Client {
  process.env[SDK_NODE_WARNING] ??= 'true';
  const agent = { keepAlive: true, maxSockets: config.maxSockets };
  // Many S3-compatible stores store aws-chunked framing verbatim; checksums only where S3 insists.
  const checksum = config.checksum === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
  return new S3Client({
    region: config.region,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    forcePathStyle: config.forcePathStyle,
    ...(config.credentials === undefined ? {} : { credentials: staticCredentials(config.credentials) }),
    maxAttempts: config.maxAttempts,
    retryMode: 'standard',
    logger: sdkLogger,
    requestChecksumCalculation: checksum,
    responseChecksumValidation: checksum,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: config.connectTimeoutMs,
      // An idle timeout, not a total one: a multi-GiB part may take minutes but never stalls that long.
      socketTimeout: config.requestTimeoutMs,
      httpAgent: new http.Agent(agent),
      httpsAgent: new https.Agent(agent),
    }),
  });
}

function staticCredentials(c: NonNullable<S3Config['credentials']>): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } {
  return c.sessionToken === undefined ? { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } : { ...c, sessionToken: c.sessionToken };
}

/** How the endpoint is named in error messages. */
export function describeEndpoint(config: Pick<S3Config, 'endpoint' | 'region'>): string {
  return config.endpoint ?? `AWS S3 (${config.region})`;
}

/**
 * The SDK logs to the console when a request with a streamed body fails, calling it non-retryable;
 * the driver retries those itself with a fresh body (withStreamRetries), so that line is dropped.
 */
const sdkLogger = {
  debug: (): void => undefined,
  info: (): void => undefined,
  warn: (...content: unknown[]): void => {
    if (content.some((c) => typeof c === 'string' && c.includes('non-retryable streaming request'))) return;
    console.warn(...content);
  },
  // Failed commands are logged here by the SDK; the driver throws typed errors for them instead.
  error: (): void => undefined,
};
