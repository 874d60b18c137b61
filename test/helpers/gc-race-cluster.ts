// Two real `berth serve` processes over one storage and one metadata store, with background GC on,
// for the GC race harness: filesystem + embedded (both processes on one data directory) or S3
// (s3rver) + Redis. The harness's own process opens the same storage stack, as `berth gc` would, to
// run passes on demand and to look at what is stored.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../server/config.js';
import type { Collector, GcSummary } from '../../server/registry/gc/collector.js';
import { gcCollector } from '../../server/registry/gc/setup.js';
import { buildStorageStack, type StorageStack } from '../../server/storage-stack.js';
import { startBerthProcess, type BerthProcess } from './berth-process.js';
import { startRedisServer, type RedisServer } from './redis-server.js';
import { startS3rver, type S3rverHandle } from './s3rver.js';

export type RaceSetup = 'filesystem+embedded' | 's3+redis';

export interface RaceGcSettings {
  delaySeconds: number;
  quarantineSeconds: number;
  intervalSeconds: number;
}

/** What one process's background passes did, read from its log lines. */
export interface PassTally {
  /** Passes that looked at queued work (a pass with nothing due logs nothing). */
  passes: number;
  examined: number;
  /** Time the passes took, summed. */
  durationMs: number;
  blobsQuarantined: number;
  blobsDeleted: number;
  bytesFreed: number;
  manifestsDeleted: number;
  linksRemoved: number;
  /** Items a pass could not finish (GcSummary.errors), and passes that failed or refused outright. */
  errors: number;
  failedPasses: number;
  refusedPasses: number;
  /** The first few failure messages, for the report. */
  problems: string[];
}

export interface RaceCluster {
  readonly setup: RaceSetup;
  readonly urls: readonly string[];
  /** The same storage and metadata the processes use, opened by this process. */
  readonly stack: StorageStack;
  /** A collector over `stack` with the processes' configuration: a pass on demand, as `berth gc` runs one. */
  readonly collector: Collector;
  /** Per process, what its background passes did so far. */
  readonly background: readonly PassTally[];
  /** The processes' last log lines, for failure messages. */
  output(): string;
  /** Stops both processes (SIGTERM) and everything started for them; resolves with their exit codes. */
  stop(): Promise<(number | null)[]>;
}

function emptyTally(): PassTally {
  return {
    passes: 0,
    examined: 0,
    durationMs: 0,
    blobsQuarantined: 0,
    blobsDeleted: 0,
    bytesFreed: 0,
    manifestsDeleted: 0,
    linksRemoved: 0,
    errors: 0,
    failedPasses: 0,
    refusedPasses: 0,
    problems: [],
  };
}

function note(tally: PassTally, problem: string): void {
  if (tally.problems.length < 5) tally.problems.push(problem);
}

/** Folds one JSON log line of a Berth process into its tally. */
function countLogLine(tally: PassTally, line: string): void {
  let entry: { msg?: unknown; gc?: Partial<GcSummary>; err?: { message?: unknown } };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return;
  }
  if (entry.msg === 'gc pass finished' && entry.gc) {
    const gc = entry.gc;
    tally.passes++;
    tally.examined += gc.examined ?? 0;
    tally.durationMs += gc.durationMs ?? 0;
    tally.blobsQuarantined += gc.blobsQuarantined ?? 0;
    tally.blobsDeleted += gc.blobsDeleted ?? 0;
    tally.bytesFreed += gc.bytesFreed ?? 0;
    tally.manifestsDeleted += gc.manifestsDeleted ?? 0;
    tally.linksRemoved += gc.linksRemoved ?? 0;
    tally.errors += gc.errors ?? 0;
  } else if (entry.msg === 'gc pass failed') {
    tally.failedPasses++;
    note(tally, `pass failed: ${String(entry.err?.message)}`);
  } else if (typeof entry.msg === 'string' && entry.msg.startsWith('garbage collection refused')) {
    tally.refusedPasses++;
    note(tally, entry.msg);
  }
}

/** The Berth configuration both processes get (and this process's own stack), minus where the data lives. */
function raceConfig(gc: RaceGcSettings): Record<string, unknown> {
  return {
    log: { level: 'info', access: false },
    // The audit stream would drown the GC log lines the harness reads (and keeps for failure messages).
    audit: { enabled: false },
    gc: { enabled: true, delaySeconds: gc.delaySeconds, quarantineSeconds: gc.quarantineSeconds, intervalSeconds: gc.intervalSeconds },
  };
}

export async function startRaceCluster(setup: RaceSetup, gc: RaceGcSettings): Promise<RaceCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-gc-race-'));
  let s3: S3rverHandle | undefined;
  let redis: RedisServer | undefined;
  const procs: BerthProcess[] = [];
  let stack: StorageStack | undefined;
  const cleanup = async () => {
    await stack?.close().catch(() => undefined);
    await Promise.all([s3?.stop(), redis?.stop()]);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    let config = raceConfig(gc);
    if (setup === 's3+redis') {
      s3 = await startS3rver();
      redis = await startRedisServer();
      const prefix = `race-${randomBytes(4).toString('hex')}`;
      config = {
        ...config,
        storage: { driver: 's3', s3: s3.config({ prefix }) },
        metadata: { store: 'redis', redis: { url: redis.url, keyPrefix: `${prefix}:` } },
      };
    }
    const background = [emptyTally(), emptyTally()];
    // One after the other: the first creates the store (and marks it complete, being new), the
    // second opens what the first made.
    for (const tally of background) {
      procs.push(await startBerthProcess({ dataDir: dir, config, onLog: (line) => countLogLine(tally, line) }));
    }
    const parsed = parseConfig({ ...config, dataDir: dir, log: { level: 'silent' } });
    stack = await buildStorageStack(parsed);
    const opened = stack;
    return {
      setup,
      urls: procs.map((p) => p.url),
      stack: opened,
      collector: gcCollector(opened.driver, opened.metadata, parsed, Date.now),
      background,
      output: () => procs.map((p, i) => `--- process ${i} (${p.url})\n${p.output()}`).join('\n'),
      async stop() {
        const codes = await Promise.all(procs.map((p) => p.stop()));
        await cleanup();
        return codes;
      },
    };
  } catch (err) {
    await Promise.all(procs.map((p) => p.kill()));
    await cleanup();
    throw err;
  }
}
