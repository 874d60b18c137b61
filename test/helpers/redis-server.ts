// Starts a real redis-server for tests: own free port, own scratch directory, never the one on 6379.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServerOptions {
  /** Turn on the append-only file (default: off, like `--appendonly no`). */
  appendonly?: boolean;
  /** RDB snapshot rule, e.g. '3600 1' (default: '' = no snapshots). */
  save?: string;
  /** Extra command-line arguments, e.g. ['--requirepass', 'secret']. */
  args?: string[];
  /** Also keep port + 10000 free (Redis Cluster's bus port). */
  clusterBus?: boolean;
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Starts the server again on the same port and directory after kill(); resolves once it answers PING. */
  restart(): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing (a hung Redis). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGKILL, as a crash; the directory stays for restart(). Resolves once the process is gone. */
  kill(): Promise<void>;
  /** Ends the server and removes its directory. */
  stop(): Promise<void>;
}

const BINARY = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
const READY_TIMEOUT_MS = 10_000;

async function listenOn(port: number): Promise<number | undefined> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
  } catch {
    return undefined;
  }
  const address = server.address();
  server.close();
  await once(server, 'close');
  return address !== null && typeof address !== 'string' ? address.port : undefined;
}

async function freePort(clusterBus = false): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOn(0);
    if (port === undefined) continue;
    if (!clusterBus) return port;
    // The bus port must exist and be free too; the OS hands out ports up to ~61000.
    if (port + 10_000 <= 65_535 && (await listenOn(port + 10_000)) !== undefined) return port;
  }
  throw new Error('no free port found');
}

/**
 * Sends one command over a raw socket and judges the reply with `verdict` (undefined: not complete yet);
 * false on a timeout or a connection error.
 */
function askRedis(port: number, command: string, verdict: (reply: string) => boolean | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      const v = verdict(reply);
      if (v !== undefined) done(v);
    });
  });
}

/** One PING; true on +PONG (or NOAUTH, which still proves the server is up). */
function pingOnce(port: number): Promise<boolean> {
  return askRedis(port, 'PING', (r) => (r.includes('\r\n') ? r.startsWith('+PONG') || r.startsWith('-NOAUTH') : undefined));
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;

  const launch = async (): Promise<void> => {
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      options.save ?? '',
      '--appendonly',
      options.appendonly ? 'yes' : 'no',
      '--daemonize',
      'no',
      '--logfile',
      '',
      ...(options.args ?? []),
    ];
    const proc = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let log = '';
    const keep = (chunk: Buffer) => {
      log = (log + chunk.toString('utf8')).slice(-4000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await pingOnce(port))) {
      if (exited) throw new Error(`redis-server exited during start-up on port ${port}:\n${log}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`redis-server did not answer PING on port ${port} within ${READY_TIMEOUT_MS} ms:\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  const killChild = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    proc.kill('SIGCONT'); // a paused server would otherwise never act on SIGTERM
    await exited;
  };

  // Another process may grab the free port between our probe and redis binding it: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort(options.clusterBus);
    try {
      await launch();
      break;
    } catch (err) {
      await killChild('SIGKILL');
      if (attempt >= 3) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async restart() {
      await killChild('SIGKILL');
      await launch();
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    kill: () => killChild('SIGKILL'),
    async stop() {
      await killChild('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisCluster {
  readonly nodes: RedisServer[];
  /** redis:// URLs of every node, as `cluster.nodes` in the config. */
  readonly urls: string[];
  stop(): Promise<void>;
}

/** A real Redis Cluster of `masters` nodes (no replicas), all slots assigned, state ok. */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await startRedisServer({
          clusterBus: true,
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'],
        }),
      );
    }
    const create = spawn(
      '/usr/bin/redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    create.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    create.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const [code] = (await once(create, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`redis-cli --cluster create failed (${code}):\n${output}`);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const node of nodes) {
      while (!(await clusterStateOk(node.port))) {
        if (Date.now() > deadline) throw new Error(`cluster did not reach state ok:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    return { nodes, urls: nodes.map((n) => n.url), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function clusterStateOk(port: number): Promise<boolean> {
  return askRedis(port, 'CLUSTER INFO', (r) => (r.includes('cluster_state:') ? r.includes('cluster_state:ok') : undefined));
}

export interface RedisSentinel {
  readonly port: number;
  stop(): Promise<void>;
}

/** One redis-sentinel watching `primary` under `name` (quorum 1). */
export async function startRedisSentinel(primary: RedisServer, name: string): Promise<RedisSentinel> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-sentinel-'));
  const port = await freePort();
  const conf = join(dir, 'sentinel.conf');
  await writeFile(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${primary.port} 1`, ''].join('\n'));
  const proc = spawn(BINARY, [conf, '--sentinel'], { stdio: 'ignore' });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = once(proc, 'exit');
      proc.kill('SIGKILL');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await pingOnce(port))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`redis-sentinel did not start on port ${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { port, stop };
}
