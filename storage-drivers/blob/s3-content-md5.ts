// DeleteObjects is the one call of Berth's that S3 refuses without a body checksum. Since January
// 2025 the SDK sends a CRC32 header for it even in 'when_required' mode, and stores that predate such
// headers (MinIO releases from before 2025, and others) answer MissingContentMD5. Content-MD5, what
// every SDK sent until then, is what S3 asked for first and what those stores still accept.
import { createHash } from 'node:crypto';
import type { DeleteObjectsCommand } from '@aws-sdk/client-s3';

interface RequestShape {
  headers?: Record<string, string>;
  body?: unknown;
}

/** Makes `command` carry Content-MD5 in place of the SDK's flexible-checksum headers. */
export function withContentMd5(command: DeleteObjectsCommand): DeleteObjectsCommand {
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as RequestShape | undefined;
      const headers = request?.headers;
      const body = request?.body;
      if (headers !== undefined && (typeof body === 'string' || body instanceof Uint8Array)) {
        for (const name of Object.keys(headers)) {
          const lower = name.toLowerCase();
          if (lower.startsWith('x-amz-checksum-') || lower === 'x-amz-sdk-checksum-algorithm' || lower === 'content-md5') delete headers[name];
        }
        headers['content-md5'] = createHash('md5').update(body).digest('base64');
      }
      return next(args);
    },
    // Low priority: runs after the SDK's checksum middleware (same step, normal priority), which would
    // otherwise add its header back.
    { step: 'build', priority: 'low', name: 'berthContentMd5', override: true },
  );
  return command;
}
