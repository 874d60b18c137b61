import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { BerthConfig } from '../config.js';
import { startMetricsServer } from './metrics.js';
import { nodeSupportNotice } from './node-support.js';
import { stdoutLines } from './stdout-batch.js';

/** Where the primary serves the workers' aggregated metrics when metrics.port is not set. */
export const CLUSTER_METRICS_PORT = 9100;

function say(level: 'info' | 'warn' | 'error', msg: string, extra: Record<string, unknown> = {}): void {
  stdoutLines.write(`${JSON.stringify({ level, time: new Date().toISOString(), pid: process.pid, role: 'primary', ...extra, msg })}\n`);
}

/**
 * The primary of cluster mode (http.workers > 1): forks the workers, which each run the whole server
 * on the shared port; restarts a worker that dies; forwards SIGHUP (certificate reload) and SIGTERM
 * (graceful drain) to all of them; and serves their metrics summed up. Every guarantee holds across
 * workers as across separate processes: uploads, leases and metadata live in shared storage, and a
 * chunk that lands on another worker resumes the saved hash state.
 */
export async function runClusterPrimary(config: BerthConfig, args: string[]): Promise<void> {
  cluster.setupPrimary({ args: ['serve', ...args] });
  let stopping = false;
  let listening = 0;
  const started = new Promise<void>((resolve, reject) => {
    const spawn = (): Worker => {
      const worker = cluster.fork();
      worker.once('listening', () => {
        if (++listening === config.http.workers) resolve();
      });
      worker.once('exit', (code, signal) => {
        if (stopping) return;
        if (listening < config.http.workers) {
          // A worker that cannot even start (config, storage, Redis) will not do better on a retry.
          reject(new Error(`worker ${worker.process.pid} exited during start-up (${signal ?? code}); see its message above`));
          return;
        }
        say('warn', 'worker died; starting a new one', { worker: worker.process.pid, code, signal });
        spawn();
      });
      return worker;
    };
    for (let i = 0; i < config.http.workers; i++) spawn();
  });

  const workers = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  const stopAll = async (signal: NodeJS.Signals) => {
    stopping = true;
    const exits = workers().map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))));
    for (const w of workers()) w.process.kill(signal);
    await Promise.all(exits);
  };
  try {
    await started;
  } catch (err) {
    await stopAll('SIGKILL');
    throw err;
  }

  let metricsServer: { close(): Promise<void> } | undefined;
  if (config.metrics.enabled) {
    const aggregate = new AggregatorRegistry();
    metricsServer = await startMetricsServer({
      metrics: { exposition: () => aggregate.clusterMetrics(), contentType: aggregate.contentType },
      config: { ...config, metrics: { ...config.metrics, port: config.metrics.port ?? CLUSTER_METRICS_PORT } },
    });
  }
  const nodeNotice = nodeSupportNotice();
  if (nodeNotice) say('warn', nodeNotice);
  say('info', 'Berth cluster is serving', { workers: config.http.workers, port: config.http.port });

  process.on('SIGHUP', () => {
    for (const w of workers()) w.process.kill('SIGHUP');
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      say('info', 'shutting down', { signal });
      stopAll('SIGTERM')
        .then(() => metricsServer?.close())
        .then(
          () => process.exit(0),
          () => process.exit(1),
        );
    });
  }
}

/** In a worker: lets the primary's aggregator read this worker's metrics registry. */
export function exposeWorkerMetrics(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs prom-client's listener for the primary's requests in this worker.
  new AggregatorRegistry();
}

export const isClusterWorker = (): boolean => cluster.isWorker;
