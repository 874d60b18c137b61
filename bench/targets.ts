// The registries under test, each its own process on a free loopback port: Berth on the filesystem
// with the embedded store, Berth on S3 (s3rver) with Redis, and CNCF distribution on the filesystem.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../test/helpers/berth-process.js';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';
import { startS3rver, type S3rverHandle } from '../test/helpers/s3rver.js';
import { S3_DEFAULT_PART_BYTES } from '../storage-drivers/blob/s3-config.js';

export type TargetId = 'berth-fs' | 'distribution' | 'berth-s3';

export interface Target {
  id: TargetId;
  /** Human description of the setup, for the report. */
  setup: string;
  url: string;
  /** The registry process: its CPU and memory are what the report charges to the target. */
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

export const DISTRIBUTION_BINARY = '/usr/bin/docker-registry';
const ROOT = new URL('../../', import.meta.url).pathname;
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

/** Spawns a server with its output in `logFile`; resolves once GET `readyPath` (default /v2/) answers 200. */
async function spawnServer(
  command: string,
  args: string[],
  dir: string,
  logFile: string,
  port: number,
  env: Record<string, string> = {},
  readyPath = '/v2/',
): Promise<{ child: ChildProcess; url: string }> {
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${command} exited (${child.exitCode ?? child.signalCode}) before it was ready; see ${logFile}`);
    try {
      const res = await fetch(`${url}${readyPath}`);
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${command} did not answer GET ${readyPath} within ${READY_TIMEOUT_MS} ms; see ${logFile}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, url };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Settings both registries share so neither pays for per-request logging the other skips. */
export function berthBase(dir: string, port: number): Record<string, unknown> {
  return {
    dataDir: join(dir, 'data'),
    http: { host: '127.0.0.1', port },
    log: { level: 'warn', access: false },
    audit: { output: join(dir, 'audit.log') },
  };
}

export interface BerthLaunch {
  /** Extra `node` flags for Berth (e.g. --cpu-prof), never for the other processes. */
  nodeFlags?: string[];
  /** Where readiness is polled: /readyz when auth is on (GET /v2/ then answers 401). */
  readyPath?: string;
}

/** A `berth serve` process with `config` (written to dir/berth.yaml), once it answers GET /v2/. */
export async function launchBerth(
  dir: string,
  config: Record<string, unknown>,
  port: number,
  launch: BerthLaunch = {},
  cleanup: () => Promise<void> = async () => {},
): Promise<Omit<Target, 'id' | 'setup'>> {
  const file = join(dir, 'berth.yaml');
  await writeFile(file, stringify(config));
  const logFile = join(dir, 'berth.log');
  const { child, url } = await spawnServer(
    process.execPath,
    [...(launch.nodeFlags ?? []), join(ROOT, 'bin/berth.js'), 'serve', '--config', file],
    dir,
    logFile,
    port,
    { BERTH_CONFIG: '' },
    launch.readyPath,
  );
  return {
    url,
    pid: child.pid as number,
    logFile,
    stop: async () => {
      await stopChild(child);
      await cleanup();
    },
  };
}

async function startBerth(
  id: TargetId,
  setup: string,
  dir: string,
  config: Record<string, unknown>,
  port: number,
  launch: BerthLaunch,
  cleanup?: () => Promise<void>,
): Promise<Target> {
  return { id, setup, ...(await launchBerth(dir, config, port, launch, cleanup)) };
}

export async function startBerthFilesystem(dir: string, launch: BerthLaunch = {}): Promise<Target> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  return startBerth('berth-fs', 'Berth, filesystem storage + embedded (lmdb) metadata, one process', dir, berthBase(dir, port), port, launch);
}

export async function startBerthS3(dir: string, launch: BerthLaunch = {}): Promise<Target> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  let s3: S3rverHandle | undefined;
  let redis: RedisServer | undefined;
  const cleanup = async () => {
    await Promise.all([s3?.stop(), redis?.stop()]);
  };
  try {
    s3 = await startS3rver({ bucket: 'berth-bench' });
    redis = await startRedisServer();
    const config = {
      ...berthBase(dir, port),
      // The default part size (8 MiB), not the tests' 5 MiB minimum.
      storage: {
        driver: 's3',
        s3: s3.config({ partSizeBytes: S3_DEFAULT_PART_BYTES, maxAttempts: 3 }),
        // BENCH_S3_SHARED_READS=off measures the unshared read path (each GET its own S3 read).
        ...(process.env.BENCH_S3_SHARED_READS === 'off' ? { sharedReads: { enabled: false } } : {}),
      },
      metadata: { store: 'redis', redis: { url: redis.url, keyPrefix: 'bench:' } },
    };
    return await startBerth('berth-s3', 'Berth, S3 storage (s3rver, one Node process) + Redis metadata, one process', dir, config, port, launch, cleanup);
  } catch (err) {
    await cleanup();
    throw err;
  }
}

export function distributionAvailable(): boolean {
  return existsSync(DISTRIBUTION_BINARY);
}

/**
 * distribution 2.8 as Debian ships it, filesystem storage, the package's default in-memory blob
 * descriptor cache; with `proxyRemoteUrl`, a pull-through cache of that registry.
 */
export async function startDistribution(dir: string, options: { proxyRemoteUrl?: string } = {}): Promise<Target> {
  await mkdir(join(dir, 'storage'), { recursive: true });
  const port = await freePort();
  const config = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true }, formatter: 'text' },
    storage: {
      filesystem: { rootdirectory: join(dir, 'storage') },
      cache: { blobdescriptor: 'inmemory' },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `127.0.0.1:${port}`, secret: 'berth-bench-not-a-secret' },
    ...(options.proxyRemoteUrl ? { proxy: { remoteurl: options.proxyRemoteUrl } } : {}),
  };
  const file = join(dir, 'config.yml');
  await writeFile(file, stringify(config));
  const logFile = join(dir, 'registry.log');
  const { child, url } = await spawnServer(DISTRIBUTION_BINARY, ['serve', file], dir, logFile, port);
  return {
    id: 'distribution',
    setup: 'distribution 2.8 (Debian docker-registry), filesystem storage, in-memory blob descriptor cache',
    url,
    pid: child.pid as number,
    logFile,
    stop: () => stopChild(child),
  };
}
