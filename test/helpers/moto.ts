// A second S3 implementation for tests: moto's server (Python, `pip install 'moto[server]'`) on a free
// 127.0.0.1 port. Unlike s3rver it answers DeleteObjects with per-key errors (a bucket policy that
// denies s3:DeleteObject on some keys), and it implements the multipart calls s3rver lacks. It keeps
// everything in memory and exits by itself when the test process goes away (its stdin closes).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { CreateBucketCommand, PutBucketPolicyCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3ConfigInput } from '../../storage-drivers/blob/s3-config.js';

/** moto accepts any credentials. */
const CREDENTIALS = { accessKeyId: 'moto', secretAccessKey: 'moto' } as const;

export interface MotoHandle {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  /** Creates an empty bucket with a fresh name. */
  createBucket(): Promise<string>;
  /** Refuses s3:DeleteObject on every key under `prefix` (an S3 key prefix) of `bucket`. */
  denyDeletes(bucket: string, prefix: string): Promise<void>;
  /** Driver configuration for `bucket` (path-style, static keys, fast failures). */
  config(bucket: string, overrides?: Partial<S3ConfigInput>): S3ConfigInput;
  stop(): Promise<void>;
}

// moto_server exits once its stdin closes, so a test process that dies takes it along.
const MAIN = `
import sys, threading, os
from moto.server import main
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
main(['-H', '127.0.0.1', '-p', '0'])
`;

/** Starts moto's S3 server; `stop()` ends it. */
export async function startMoto(): Promise<MotoHandle> {
  const child = spawn('python3', ['-c', MAIN], { stdio: ['pipe', 'ignore', 'pipe'] });
  let port: number;
  try {
    port = await readPort(child);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const config = (bucket: string, overrides: Partial<S3ConfigInput> = {}): S3ConfigInput => ({
    bucket,
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { ...CREDENTIALS },
    maxAttempts: 2,
    partSizeBytes: 5 * 1024 * 1024,
    ...overrides,
  });
  const admin = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { ...CREDENTIALS } });
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    config,
    async createBucket() {
      const bucket = `berth-test-${randomBytes(4).toString('hex')}`;
      await admin.send(new CreateBucketCommand({ Bucket: bucket }));
      return bucket;
    },
    async denyDeletes(bucket, prefix) {
      const statement = { Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${bucket}/${prefix}*` };
      await admin.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [statement] }) }));
    },
    stop: () => {
      stopped ??= (async () => {
        admin.destroy();
        const exited = new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) resolve();
          else child.once('exit', () => resolve());
        });
        child.stdin?.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      })();
      return stopped;
    },
  };
}

/** The port from the "Running on http://127.0.0.1:<port>" line the server logs once it listens. */
function readPort(child: ChildProcess): Promise<number> {
  const stderr = child.stderr as NodeJS.ReadableStream;
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: stderr });
    const seen: string[] = [];
    const done = (): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      lines.close();
    };
    const fail = (why: string): void => {
      done();
      reject(new Error(`${why}; is moto installed (pip install 'moto[server]')? It said:\n${seen.join('\n')}`));
    };
    const onExit = (code: number | null): void => fail(`moto exited early with code ${String(code)}`);
    const onError = (err: Error): void => fail(`moto failed to start: ${err.message}`);
    const timer = setTimeout(() => fail('moto did not start within 30 s'), 30_000);
    child.once('exit', onExit);
    child.once('error', onError);
    lines.on('line', (line) => {
      seen.push(line);
      const match = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (match === null) return;
      done();
      // Its request log goes on: drain it, or the server blocks once the pipe is full.
      stderr.resume();
      resolve(Number(match[1]));
    });
  });
}
