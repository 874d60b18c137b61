// A real S3-compatible server for tests: s3rver (npm) in a child process on a free 127.0.0.1 port,
// with a scratch directory and a fresh bucket. A separate process keeps its event loop and memory out
// of the code under test; it exits by itself when the test process goes away (its stdin closes).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { S3ConfigInput } from '../../storage-drivers/blob/s3-config.js';

/** s3rver's only credentials. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface S3rverHandle {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  bucket: string;
  /** Where s3rver keeps the bucket's files. */
  directory: string;
  /** Driver configuration for this server and bucket (path-style, static keys, fast failures). */
  config(overrides?: Partial<S3ConfigInput>): S3ConfigInput;
  stop(): Promise<void>;
}

const CHILD = `
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Readable, Transform } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const S3rver = require(process.env.S3RVER_MODULE);
const Store = require(path.join(path.dirname(process.env.S3RVER_MODULE), 'stores', 'filesystem.js'));

// s3rver 3.7.1 answers a PUT when its hashing stream ends, before the file is written, so a read right
// after a write can see an empty or short object. S3 guarantees read-after-write, and the driver relies
// on it: write to a temporary file, wait for it, rename it into place.
async function writeFully(file, content) {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const md5 = crypto.createHash('md5');
  let size = 0;
  const tmp = file + '.' + crypto.randomBytes(6).toString('hex') + '.tmp';
  await pipeline(
    Buffer.isBuffer(content) ? Readable.from([content]) : content,
    new Transform({
      transform(chunk, _encoding, done) {
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    }),
    fs.createWriteStream(tmp),
  );
  await fs.promises.rename(tmp, file);
  return { size, md5: md5.digest('hex') };
}
Store.prototype.putObject = async function (object) {
  const { size, md5 } = await writeFully(this.getResourcePath(object.bucket, object.key, 'object'), object.content);
  await this.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size, md5 };
};
Store.prototype.putPart = async function (bucket, uploadId, partNumber, content) {
  const partPath = path.join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
  const { size, md5 } = await writeFully(partPath, content);
  await fs.promises.writeFile(partPath + '.md5', md5);
  return { size, md5 };
};

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory: process.env.S3RVER_DIR,
  configureBuckets: [{ name: process.env.S3RVER_BUCKET }],
});
server.run().then((address) => {
  process.stdout.write(JSON.stringify({ port: address.port }) + '\\n');
}, (err) => {
  console.error(err);
  process.exit(1);
});
const stop = () => server.close().finally(() => process.exit(0));
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
`;

/** Starts s3rver with an empty bucket; `stop()` ends it and removes its files. */
export async function startS3rver(options: { bucket?: string } = {}): Promise<S3rverHandle> {
  const directory = await mkdtemp(join(tmpdir(), 'berth-s3rver-'));
  const bucket = options.bucket ?? `berth-test-${randomBytes(4).toString('hex')}`;
  const modulePath = createRequire(import.meta.url).resolve('s3rver');
  // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has in its legacy
  // provider: without it every paginated listing fails with a 500.
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', CHILD], {
    env: { ...process.env, S3RVER_MODULE: modulePath, S3RVER_DIR: directory, S3RVER_BUCKET: bucket },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let port: number;
  try {
    port = await readPort(child);
  } catch (err) {
    child.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    bucket,
    directory,
    config: (overrides = {}) => ({
      bucket,
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      credentials: { ...S3RVER_CREDENTIALS },
      maxAttempts: 2,
      partSizeBytes: 5 * 1024 * 1024,
      ...overrides,
    }),
    stop: () => {
      stopped ??= (async () => {
        const exited = new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) resolve();
          else child.once('exit', () => resolve());
        });
        child.stdin?.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
        await rm(directory, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

function readPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const timer = setTimeout(() => reject(new Error('s3rver did not start within 15 s')), 15_000);
    const fail = (why: string): void => {
      clearTimeout(timer);
      lines.close();
      reject(new Error(why));
    };
    child.once('exit', (code) => fail(`s3rver exited early with code ${String(code)}`));
    child.once('error', (err) => fail(`s3rver failed to start: ${err.message}`));
    lines.once('line', (line) => {
      clearTimeout(timer);
      lines.close();
      try {
        const { port } = JSON.parse(line) as { port: number };
        resolve(port);
      } catch {
        reject(new Error(`unexpected s3rver output: ${line}`));
      }
    });
  });
}
