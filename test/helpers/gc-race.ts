// The GC race harness (issue 12), for the CI test and the benchmark's soak alike: two Berth processes
// over one storage and one metadata store with background GC every second and no delay, pushers
// racing it for a bounded number of seeded rounds, a pass on demand during each round (as `berth gc`
// runs one), then quiet and the checks of gc-race-check.ts.
import type { GcSummary } from '../../server/registry/gc/collector.js';
import { emptyRunSummary, plus, type GcRunSummary } from '../../server/registry/gc/run.js';
import { startRaceCluster, type PassTally, type RaceCluster, type RaceGcSettings, type RaceSetup } from './gc-race-cluster.js';
import { checkRace, waitForQuietGc, type QuietGc, type RaceFindings } from './gc-race-check.js';
import { emptyPushStats, RaceClient, type PushStats } from './gc-race-client.js';
import { Pusher, type RaceOp } from './gc-race-pushers.js';

export interface RaceOptions {
  setup: RaceSetup;
  gc: RaceGcSettings;
  seed: number;
  pushers: number;
  reposPerPusher: number;
  rounds: number;
  opsPerRound: number;
  /** Attempts one push may take before the harness fails it. */
  maxAttempts: number;
  /** How long GC may take to drain its queue once the pushers stop. */
  quietTimeoutMs: number;
}

export interface RaceReport {
  options: RaceOptions;
  ops: Record<RaceOp, number>;
  pushes: PushStats;
  /** Background passes per process (only those that found work log themselves). */
  background: PassTally[];
  /** The passes run on demand from the harness's process. */
  onDemand: GcRunSummary;
  findings: RaceFindings;
  raceMs: number;
  quiet: QuietGc;
  /** Exit codes of the two processes after SIGTERM. */
  exitCodes: (number | null)[];
}

function sumOps(pushers: Pusher[]): Record<RaceOp, number> {
  const total = { ...(pushers[0] as Pusher).ops };
  for (const p of pushers.slice(1)) for (const [op, n] of Object.entries(p.ops) as [RaceOp, number][]) total[op] += n;
  return total;
}

export async function runGcRace(options: RaceOptions): Promise<RaceReport> {
  const cluster: RaceCluster = await startRaceCluster(options.setup, options.gc);
  let exitCodes: (number | null)[] = [];
  try {
    const stats = emptyPushStats();
    const pushers = Array.from(
      { length: options.pushers },
      (_, index) =>
        new Pusher(new RaceClient(cluster.urls, index, stats), { seed: options.seed, index, repos: options.reposPerPusher, maxAttempts: options.maxAttempts }),
    );
    let onDemand = emptyRunSummary(false);
    const tally = (s: GcSummary) => {
      onDemand = plus(onDemand, s, onDemand.passes + 1, onDemand.durationMs + s.durationMs);
    };

    const raceStart = Date.now();
    for (let round = 0; round < options.rounds; round++) {
      // The other pushers' orphans as the previous round left them, so every run chooses alike.
      const orphans = pushers.map((p) => p.orphans());
      // One pass on demand per round, racing the round's pushes (on top of each process's pass a second).
      const pass = cluster.collector.pass().then(tally);
      // Awaited below; a failure meanwhile must not count as unhandled.
      pass.catch(() => undefined);
      await Promise.all(pushers.map((p, i) => p.round(options.opsPerRound, orphans.filter((_, j) => j !== i).flat())));
      await pass;
    }
    const raceMs = Date.now() - raceStart;
    // Quiet: nothing due within the delay plus the quarantine, which is all an orphan may still wait for.
    const horizonMs = (options.gc.delaySeconds + options.gc.quarantineSeconds) * 1000 + 1000;
    const quiet = await waitForQuietGc(cluster, horizonMs, options.quietTimeoutMs);
    const findings = await checkRace(
      cluster,
      pushers.flatMap((p) => p.repos),
    );
    const background = cluster.background.map((t) => ({ ...t, problems: [...t.problems] }));
    exitCodes = await cluster.stop();
    return { options, ops: sumOps(pushers), pushes: stats, background, onDemand, findings, raceMs, quiet, exitCodes };
  } catch (err) {
    const output = cluster.output();
    await cluster.stop().catch(() => undefined);
    if (err instanceof Error) err.message += `\n${output}`;
    throw err;
  }
}

/** One line for the test's output and the benchmark's log. */
export function raceSummaryLine(r: RaceReport): string {
  const o = r.options;
  const bg = r.background;
  const sum = (pick: (t: PassTally) => number) => bg.reduce((n, t) => n + pick(t), 0);
  const retries = Object.entries(r.pushes.retries)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  const ops = Object.values(r.ops).reduce((a, b) => a + b, 0);
  return [
    `gc race ${o.setup} (delay ${o.gc.delaySeconds} s, quarantine ${o.gc.quarantineSeconds} s, seed ${o.seed}):`,
    `${o.pushers} pushers × ${o.rounds} rounds, ${ops} ops, ${r.pushes.manifestPuts} manifest pushes, ${r.pushes.blobUploads} uploads, ${r.pushes.headSkips} HEAD skips,`,
    `${r.pushes.mounts} mounts (+${r.pushes.mountFallbacks} refused), ${r.pushes.manifestDeletes} manifest + ${r.pushes.tagDeletes} tag deletes;`,
    `retried ${retries || 'none'} (pushes by attempts needed: ${Object.entries(r.pushes.attempts)
      .map(([n, count]) => `${n}: ${count}`)
      .join(', ')});`,
    `passes ${bg.map((t) => t.passes).join('+')} background with work + ${r.onDemand.passes} on demand,`,
    `${sum((t) => t.examined) + r.onDemand.examined} items judged in ${sum((t) => t.durationMs) + r.onDemand.durationMs} ms of passes;`,
    `blobs deleted ${sum((t) => t.blobsDeleted) + r.onDemand.blobsDeleted}, bytes freed ${sum((t) => t.bytesFreed) + r.onDemand.bytesFreed},`,
    `manifests deleted ${sum((t) => t.manifestsDeleted) + r.onDemand.manifestsDeleted}, pass errors ${sum((t) => t.errors) + r.onDemand.errors};`,
    `at the end ${r.findings.liveManifests} live manifests, ${r.findings.storedBlobs} blobs stored (${r.findings.storedBytes} bytes),`,
    `dangling ${r.findings.dangling.length}, orphans left ${r.findings.orphans.length}; race ${r.raceMs} ms, quiet after ${r.quiet.waitedMs} ms (${r.quiet.dueAtStart} items were due), ${r.quiet.later.length} item(s) queued for later`,
  ].join(' ');
}
