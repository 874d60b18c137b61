// Real registry clients (podman, buildah, containerd's ctr, the docker CLI, umoci) run as child
// processes in a sandbox of scratch directories: each gets its own HOME, config files, storage and
// credentials, so nothing reads or writes the machine's ~/.docker, /etc/containers or /var/lib.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { ScratchDir } from './scratch.js';

/** Every client call is bounded: a hung client fails its test instead of the whole run. */
export const TOOL_TIMEOUT_MS = 60_000;

export interface ToolResult {
  stdout: string;
  stderr: string;
  /** stdout as bytes, for tools that print blobs. */
  bytes: Buffer;
}

export class ToolError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`${command} failed (${exitCode === null ? 'killed' : `exit ${exitCode}`}): ${stderr.trim() || stdout.trim()}`);
  }
}

export interface ToolOptions {
  env?: Record<string, string>;
  /** Written to stdin, then stdin is closed (for --password-stdin, or bytes to ingest). */
  input?: string | Buffer;
  timeoutMs?: number;
}

/** Runs `cmd args` with a minimal environment plus `env`; rejects with ToolError on a non-zero exit or timeout. */
export async function runTool(cmd: string, args: string[], options: ToolOptions = {}): Promise<ToolResult> {
  const child = spawn(cmd, args, {
    env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', LANG: 'C', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  // A tool that exits without reading its stdin makes this write fail with EPIPE: its exit status tells.
  child.stdin.on('error', () => undefined);
  child.stdin.end(options.input ?? '');
  const timeoutMs = options.timeoutMs ?? TOOL_TIMEOUT_MS;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  const bytes = Buffer.concat(out);
  const stdout = bytes.toString('utf8');
  const stderr = Buffer.concat(err).toString('utf8');
  const command = `${cmd} ${args.join(' ')}`;
  if (signal !== null) throw new ToolError(command, null, stdout, `${stderr}\n(${signal}; timeout ${timeoutMs} ms)`);
  if (code !== 0) throw new ToolError(command, code, stdout, stderr);
  return { stdout, stderr, bytes };
}

/** Like runTool, but a failure is a value: for the cases that must fail. */
export async function runToolExpectingFailure(cmd: string, args: string[], options: ToolOptions = {}): Promise<ToolError> {
  try {
    await runTool(cmd, args, options);
  } catch (e) {
    if (e instanceof ToolError) return e;
    throw e;
  }
  throw new Error(`${cmd} ${args.join(' ')} succeeded but was expected to fail`);
}

/**
 * Config for the containers/image tools (podman, buildah): `hosts` are plain-HTTP registries.
 * Returns the environment that points podman and buildah at these files instead of /etc/containers.
 */
export async function containersSandbox(dir: string, hosts: string[]): Promise<Record<string, string>> {
  await mkdir(join(dir, 'home'), { recursive: true });
  await mkdir(join(dir, 'run'), { recursive: true, mode: 0o700 });
  const registries = [
    'unqualified-search-registries = []',
    'short-name-mode = "disabled"',
    ...hosts.flatMap((h) => ['[[registry]]', `location = "${h}"`, 'insecure = true']),
  ];
  await writeFile(join(dir, 'registries.conf'), `${registries.join('\n')}\n`);
  await writeFile(join(dir, 'storage.conf'), `[storage]\ndriver = "vfs"\nrunroot = "${join(dir, 'runroot')}"\ngraphroot = "${join(dir, 'root')}"\n`);
  // tmp_dir and network_config_dir default to /run/libpod and /etc/cni/net.d, which podman and buildah
  // write lock files into even when nothing runs.
  await writeFile(
    join(dir, 'containers.conf'),
    `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "${join(dir, 'libpod-tmp')}"\n[network]\nnetwork_config_dir = "${join(dir, 'net')}"\n`,
  );
  // containers/image prefers these per-user files (under HOME) to /etc/containers: the signature
  // policy, and an empty drop-in directory in place of /etc/containers/registries.conf.d.
  const userConfig = join(dir, 'home', '.config', 'containers');
  await mkdir(join(userConfig, 'registries.conf.d'), { recursive: true });
  await writeFile(join(userConfig, 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await writeFile(join(dir, 'auth.json'), '{}');
  return {
    HOME: join(dir, 'home'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
    XDG_CONFIG_HOME: join(dir, 'home', '.config'),
    CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'),
    CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
    CONTAINERS_CONF: join(dir, 'containers.conf'),
    REGISTRY_AUTH_FILE: join(dir, 'auth.json'),
    // Without it podman and buildah fall back to $HOME/.docker/config.json for credentials.
    DOCKER_CONFIG: join(dir, 'home', 'docker-unused'),
  };
}

/**
 * Global flags that keep a podman/buildah image store in `root` (vfs: no fuse, no overlay mounts).
 * podman refuses a runroot longer than 50 characters, so it goes in a short path of its own.
 */
export function storageFlags(root: string, runroot: string): string[] {
  if (runroot.length > 50) throw new Error(`runroot ${runroot} is longer than podman allows (50)`);
  return ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs'];
}

/**
 * A scratch directory with a short, lower-case path: buildah names images taken from an `oci:` path
 * after the path (and refuses upper case), and podman limits the runroot's length.
 */
export async function makeClientScratch(): Promise<ScratchDir> {
  const path = join(tmpdir(), `bc-${randomBytes(4).toString('hex')}`);
  await mkdir(path, { mode: 0o700 });
  return { path, remove: () => rm(path, { recursive: true, force: true, maxRetries: 3 }) };
}

export interface Containerd {
  /** The gRPC socket for `ctr -a`. */
  readonly address: string;
  stop(): Promise<void>;
  output(): string;
}

const CONTAINERD_READY_MS = 15_000;
const CONTAINERD_STOP_MS = 10_000;

/**
 * A containerd of its own under `dir` (root, state and sockets), with only what pushing and pulling
 * need: no CRI, no runtimes or tasks, the native snapshotter only. Resolves once it serves gRPC.
 */
export async function startContainerd(dir: string): Promise<Containerd> {
  const address = join(dir, 'containerd.sock');
  const disabled = [
    'io.containerd.grpc.v1.cri',
    'io.containerd.snapshotter.v1.aufs',
    'io.containerd.snapshotter.v1.btrfs',
    'io.containerd.snapshotter.v1.devmapper',
    'io.containerd.snapshotter.v1.zfs',
    'io.containerd.snapshotter.v1.overlayfs',
    'io.containerd.runtime.v1.linux',
    'io.containerd.runtime.v2.task',
    'io.containerd.monitor.v1.cgroups',
    'io.containerd.service.v1.tasks-service',
    'io.containerd.grpc.v1.tasks',
    // opt installs into /opt/containerd; restart watches containers this instance never runs.
    'io.containerd.internal.v1.opt',
    'io.containerd.internal.v1.restart',
    'io.containerd.tracing.processor.v1.otlp',
    'io.containerd.internal.v1.tracing',
  ];
  const config = [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    `disabled_plugins = [${disabled.map((p) => `"${p}"`).join(', ')}]`,
    '[grpc]',
    `  address = "${address}"`,
    '[ttrpc]',
    `  address = "${join(dir, 'containerd.ttrpc.sock')}"`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
  ];
  await mkdir(dir, { recursive: true });
  const configFile = join(dir, 'containerd.toml');
  await writeFile(configFile, `${config.join('\n')}\n`);
  const child: ChildProcess = spawn('containerd', ['--config', configFile], {
    env: { PATH: process.env.PATH ?? '', HOME: dir, TMPDIR: dir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const fail = (message: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${message}\n${lines.slice(-30).join('\n')}`));
    };
    const timer = setTimeout(() => fail(`containerd did not serve ${address} within ${CONTAINERD_READY_MS} ms`), CONTAINERD_READY_MS);
    const early = (code: number | null) => fail(`containerd exited early (${code})`);
    child.once('exit', early);
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      lines.push(line);
      if (lines.length > 200) lines.shift();
      if (line.includes('msg=serving...') && line.includes(`address=${address}`)) {
        clearTimeout(timer);
        child.removeListener('exit', early);
        resolve();
      }
    });
  });
  return {
    address,
    output: () => lines.join('\n'),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), CONTAINERD_STOP_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

const execFileAsync = promisify(execFile);

/** Runs skopeo (it needs no sandbox: no daemon, no storage) and returns its stdout; a failure throws with its stderr. */
export async function skopeo(...args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('skopeo', args, { timeout: 120_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}
