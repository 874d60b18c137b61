// `npm run bench`: Berth (filesystem + embedded; S3 via s3rver + Redis) and, where installed, CNCF
// distribution on the filesystem, under identical workloads run alternately against each; prints one
// side-by-side table with ratios and writes JSON and Markdown to .bench-results/.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { measureCeilings, type Ceilings } from './ceilings.js';
import { newAgent } from './client.js';
import { makeFixtures, pushFixtures } from './fixtures.js';
import { parseOptions, type BenchOptions } from './options.js';
import { eventsWorkloads, type EventsRow } from './events.js';
import { eventsTable } from './events-report.js';
import { ceilingRatio } from './ceiling-ratio.js';
import { fanoutWorkloads, type FanoutRow } from './fanout.js';
import { fanoutColdWorkload } from './fanout-cold.js';
import { fanoutTable } from './fanout-report.js';
import { gcTable, gcWorkloads, type GcRow } from './gc.js';
import { retentionWorkloads } from './retention-preview.js';
import { apiListWorkloads } from './api-list.js';
import { scaleWorkloads } from './scale.js';
import { ceilingsTable, judge, markdownTable, medianRun, type Row } from './report.js';
import {
  distributionAvailable,
  DISTRIBUTION_BINARY,
  startBerthFilesystem,
  startBerthS3,
  startDistribution,
  type BerthLaunch,
  type Target,
  type TargetId,
} from './targets.js';
import { bigWorkloads, CURL_BINARY, fanoutWorkload, MiB, pullWorkload, pushWorkload, requestWorkloads, type Workload } from './workloads.js';
import { WRK_BINARY } from './wrk.js';
import { mixedWorkload } from './mixed.js';
import { AB_BINARY } from './ab.js';

interface Plan {
  pushSizes: { size: number; counts: [number, number] }[];
  pullSizes: number[];
  pullSeconds: number;
  requestSeconds: number;
  requestWarmupSeconds: number;
  fanoutClients: number;
  fanoutLayerSizes: number[];
  bigBytes: number;
  mixedSeconds: number;
}

const FULL: Plan = {
  pushSizes: [
    { size: 1 * MiB, counts: [48, 96] },
    { size: 64 * MiB, counts: [6, 12] },
    { size: 512 * MiB, counts: [2, 4] },
  ],
  pullSizes: [64 * MiB, 512 * MiB],
  pullSeconds: 6,
  requestSeconds: 8,
  requestWarmupSeconds: 1,
  fanoutClients: 200,
  fanoutLayerSizes: [8 * MiB, 4 * MiB, 2 * MiB, 512 * 1024, 4096],
  bigBytes: 2048 * MiB,
  mixedSeconds: 60,
};

const QUICK: Plan = {
  pushSizes: [
    { size: 1 * MiB, counts: [8, 16] },
    { size: 8 * MiB, counts: [2, 4] },
    { size: 32 * MiB, counts: [1, 4] },
  ],
  pullSizes: [8 * MiB, 32 * MiB],
  pullSeconds: 1,
  requestSeconds: 1,
  requestWarmupSeconds: 0,
  fanoutClients: 40,
  fanoutLayerSizes: [1 * MiB, 256 * 1024, 4096],
  bigBytes: 128 * MiB,
  mixedSeconds: 10,
};

const CHUNK_BYTES = 8 * MiB;

function workloads(plan: Plan): Workload[] {
  const list: Workload[] = [];
  list.push(...requestWorkloads(64, plan.requestSeconds, plan.requestWarmupSeconds));
  for (const size of plan.pullSizes) for (const c of [1, 8]) list.push(pullWorkload(size, c, plan.pullSeconds));
  list.push(fanoutWorkload(plan.fanoutClients));
  for (const { size, counts } of plan.pushSizes) {
    for (const mode of ['monolithic', 'streamed', 'chunked'] as const) {
      list.push(pushWorkload(mode, size, 1, counts[0], CHUNK_BYTES));
      list.push(pushWorkload(mode, size, 4, counts[1], CHUNK_BYTES));
    }
  }
  list.push(...bigWorkloads(plan.bigBytes));
  list.push(mixedWorkload(64, plan.mixedSeconds));
  return list;
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function install(): void {
  const missing = [
    [DISTRIBUTION_BINARY, 'docker-registry'],
    [WRK_BINARY, 'wrk'],
    [AB_BINARY, 'apache2-utils'],
    [CURL_BINARY, 'curl'],
  ].filter(([bin]) => !existsSync(bin as string));
  if (missing.length === 0) return;
  const packages = missing.map(([, pkg]) => pkg as string);
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  log(`installing ${packages.join(', ')} with apt-get`);
  for (const args of [
    ['apt-get', 'update'],
    ['apt-get', 'install', '-y', ...packages],
  ]) {
    const [cmd, ...rest] = [...sudo, ...args] as [string, ...string[]];
    const result = spawnSync(cmd, rest, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (result.status !== 0) throw new Error(`${[cmd, ...rest].join(' ')} failed`);
  }
  // Debian starts the packaged registry as a service on :5000; the benchmark runs its own instance.
}

function versionOf(cmd: string, args: string[]): string {
  try {
    return (
      execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
        .split('\n')[0]
        ?.trim() ?? ''
    );
  } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? '';
    return out.split('\n')[0]?.trim() ?? 'unknown';
  }
}

function machine(scratch: string) {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    shaNi: /\bsha_ni\b/.test(cpuinfo),
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    kernel: release(),
    node: process.version,
    distribution: existsSync(DISTRIBUTION_BINARY) ? versionOf(DISTRIBUTION_BINARY, ['--version']) : 'not installed',
    wrk: versionOf(WRK_BINARY, ['--version']).split(' [')[0] ?? '',
    ab: versionOf(AB_BINARY, ['-V']).replace(/^This is ApacheBench, Version ([\d.]+).*$/, 'ApacheBench $1'),
    scratch,
  };
}

async function startTargets(ids: TargetId[], scratch: string, launch: BerthLaunch): Promise<Target[]> {
  const started: Target[] = [];
  try {
    for (const id of ids) {
      const dir = join(scratch, id);
      if (id === 'berth-fs') started.push(await startBerthFilesystem(dir, launch));
      else if (id === 'berth-s3') started.push(await startBerthS3(dir, launch));
      else if (distributionAvailable()) started.push(await startDistribution(dir));
      else log(`${DISTRIBUTION_BINARY} is missing: distribution is left out (run with --install to add it)`);
    }
    return started;
  } catch (err) {
    await Promise.all(started.map((t) => t.stop()));
    throw err;
  }
}

/** No single workload on one target may take longer than this; a stuck row fails instead of hanging the run. */
const ROW_TIMEOUT_MS = 10 * 60_000;

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Flushes dirty pages so one target's unsynced writes are not paid for by the next target's row. */
function settleDisk(): void {
  spawnSync('sync', [], { stdio: 'ignore' });
}

async function main(): Promise<void> {
  const options: BenchOptions = parseOptions(process.argv.slice(2));
  const plan = options.quick ? QUICK : FULL;
  const wanted = (key: string) => options.only.length === 0 || options.only.some((s) => key.includes(s));
  const all = workloads(plan);
  const selected = all.filter((w) => wanted(w.key));
  const gcSelected = [...gcWorkloads(options.quick), ...retentionWorkloads(), ...apiListWorkloads(), ...scaleWorkloads(options.quick)].filter((w) =>
    wanted(w.key),
  );
  const eventsSelected = eventsWorkloads(options.quick).filter((w) => wanted(w.key));
  const fanoutSelected = [...fanoutWorkloads(options.quick), fanoutColdWorkload(options.quick)].filter((w) => wanted(w.key));
  if (options.install) install();
  if (selected.length > 0) {
    for (const [bin, pkg] of [
      [WRK_BINARY, 'wrk'],
      [AB_BINARY, 'apache2-utils'],
      [CURL_BINARY, 'curl'],
    ] as const) {
      if (!existsSync(bin)) throw new Error(`${bin} is missing; install it (apt-get install ${pkg}) or run with --install`);
    }
  }
  const scratch = await mkdtemp(join(tmpdir(), 'berth-bench-'));
  const fsInfo = await statfs(scratch);
  log(`scratch ${scratch} (${Math.round((fsInfo.bavail * fsInfo.bsize) / 1024 ** 3)} GiB free); ${options.quick ? 'quick' : 'full'} run`);
  const startedAt = new Date().toISOString();
  let targets: Target[] = [];
  const stopAll = async () => {
    const list = targets;
    targets = [];
    await Promise.all(list.map((t) => t.stop().catch(() => undefined)));
  };
  const onSignal = () => {
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rows: Row[] = [];
  const gcRows: GcRow[] = [];
  const eventsRows: EventsRow[] = [];
  const fanoutRows: FanoutRow[] = [];
  let ceilings: Ceilings | undefined;
  try {
    if (selected.length > 0) await runSharedTargets();
    // The GC rows start registries of their own: the shared ones would only take CPU from them.
    await stopAll();
    for (const w of gcSelected) {
      log(`${w.key}: starting`);
      try {
        const { ok, figures } = await withTimeout(w.run(scratch, log), ROW_TIMEOUT_MS, w.key);
        gcRows.push({ key: w.key, title: w.title, ok, figures });
        log(`${w.key}: ${ok ? 'checks passed' : 'CHECKS FAILED'}`);
      } catch (err) {
        gcRows.push({ key: w.key, title: w.title, ok: false, error: (err as Error).message });
        log(`${w.key}: FAILED ${(err as Error).message}`);
      }
    }
    for (const w of eventsSelected) {
      log(`${w.key}: starting`);
      try {
        const row = await withTimeout(w.run(scratch, log), ROW_TIMEOUT_MS, w.key);
        eventsRows.push(row);
        log(`${w.key}: ${row.ok ? 'checks passed' : `CHECKS FAILED: ${row.problems.join('; ')}`}`);
      } catch (err) {
        eventsRows.push({ key: w.key, title: w.title, store: w.store, ok: false, problems: [], cases: [], error: (err as Error).message });
        log(`${w.key}: FAILED ${(err as Error).message}`);
      }
    }
    for (const w of fanoutSelected) {
      log(`${w.key}: starting`);
      try {
        const row = await withTimeout(w.run(scratch, log), ROW_TIMEOUT_MS, w.key);
        fanoutRows.push(row);
        log(`${w.key}: ${row.ok ? 'checks passed' : 'CHECKS FAILED'}`);
      } catch (err) {
        fanoutRows.push({ key: w.key, title: w.title, ok: false, clients: 0, cases: [], error: (err as Error).message });
        log(`${w.key}: FAILED ${(err as Error).message}`);
      }
    }
  } finally {
    await stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  /** The rows every target shares: ceilings, targets, fixtures, then each workload on each target. */
  async function runSharedTargets(): Promise<void> {
    log('machine ceilings');
    ceilings = await measureCeilings(scratch, options.quick);
    const launch: BerthLaunch = options.cpuProfDir ? { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${resolve(options.cpuProfDir)}`] } : {};
    targets = await startTargets(options.targets, scratch, launch);
    log(`targets: ${targets.map((t) => `${t.id} ${t.url} pid ${t.pid}`).join('; ')}`);
    const fixtures = makeFixtures({ tagCount: 1000, fanoutLayerSizes: plan.fanoutLayerSizes, pullSizes: plan.pullSizes });
    const agent = newAgent();
    for (const t of targets) {
      log(`fixtures → ${t.id}`);
      await pushFixtures(agent, t.url, fixtures);
    }
    // Big-pull needs big-push from the same run.
    if (selected.some((w) => w.key.startsWith('big-pull')) && !selected.some((w) => w.key.startsWith('big-push'))) {
      const push = all.find((w) => w.key.startsWith('big-push'));
      if (push)
        selected.splice(
          selected.findIndex((w) => w.key.startsWith('big-pull')),
          0,
          push,
        );
    }
    const largestPushSizes = plan.pushSizes.slice(-2).map((p) => p.size);
    for (const [index, w] of selected.entries()) {
      const row: Row = { key: w.key, title: w.title, group: w.group, unit: w.unit, results: {} };
      if (w.blobBytes !== undefined) row.blobBytes = w.blobBytes;
      for (let repeat = 0; repeat < options.repeat; repeat++) {
        // Alternate which target goes first so drift (other load, disk state) is not charged to one of them.
        const shift = (index + repeat) % targets.length;
        const order = [...targets.slice(shift), ...targets.slice(0, shift)];
        for (const target of order) {
          const result = (row.results[target.id] ??= { runs: [] });
          settleDisk();
          if (!existsSync(`/proc/${target.pid}`)) {
            result.error = 'the server process had exited before this row';
            log(`${w.key} ${target.id}: skipped, ${result.error}`);
            continue;
          }
          try {
            const m = await withTimeout(w.run(target, { scratch, agent, fixtures, repeat }), ROW_TIMEOUT_MS, `${w.key} on ${target.id}`);
            result.runs.push(m);
            const rssNote = m.peakRssBytes ? ` peak RSS ${Math.round(m.peakRssBytes / MiB)} MiB` : '';
            log(
              `${w.key} ${target.id}: ${m.value.toFixed(1)} ${w.unit}${m.p99Ms !== undefined ? ` p99 ${m.p99Ms.toFixed(2)} ms` : ''}${m.errors ? ` ${m.errors} errors` : ''}${rssNote}`,
            );
          } catch (err) {
            result.error = (err as Error).message;
            log(`${w.key} ${target.id}: FAILED ${result.error}`);
          }
        }
      }
      for (const r of Object.values(row.results)) {
        const median = medianRun(r.runs);
        if (median) r.median = median;
      }
      const fs = row.results['berth-fs']?.median;
      const dist = row.results.distribution?.median;
      if (fs && dist && dist.value > 0) row.ratio = fs.value / dist.value;
      const ceiling = ceilingRatio(row, ceilings);
      if (ceiling) row.ceiling = ceiling;
      const bar = judge(row, largestPushSizes);
      if (bar) row.bar = bar;
      rows.push(row);
    }
    agent.destroy();
  }

  const info = machine(scratch);
  const table = markdownTable(rows, options.targets);
  const missed = rows.filter((r) => r.bar && !r.bar.pass);
  const summary = rows.some((r) => r.bar)
    ? missed.length === 0
      ? 'Bar: every row met.'
      : `Bar: ${missed.length} row(s) missed: ${missed.map((r) => r.key).join(', ')}`
    : '';
  const text = [
    `Machine: ${info.cpuModel}, ${info.cores} cores${info.shaNi ? ' (SHA-NI)' : ''}, ${info.memoryGiB} GiB, Linux ${info.kernel}, Node ${info.node}, ${info.distribution}, ${info.wrk}, ${info.ab}`,
    '',
    ceilings ? ceilingsTable(ceilings) : '',
    '',
    rows.length > 0 ? table : '',
    '',
    summary,
    '',
    gcRows.length > 0 ? gcTable(gcRows) : '',
    '',
    eventsRows.length > 0 ? eventsTable(eventsRows) : '',
    '',
    fanoutRows.length > 0 ? fanoutTable(fanoutRows) : '',
  ].join('\n');
  console.log(text);
  await mkdir(options.outDir, { recursive: true });
  const stamp = startedAt.replace(/[:.]/g, '-');
  const json = {
    startedAt,
    finishedAt: new Date().toISOString(),
    options: { ...options, plan: options.quick ? 'quick' : 'full' },
    machine: info,
    ceilings,
    rows,
    gcRows,
    eventsRows,
    fanoutRows,
  };
  await writeFile(join(options.outDir, `bench-${stamp}.json`), JSON.stringify(json, null, 2) + '\n');
  await writeFile(join(options.outDir, `bench-${stamp}.md`), text + '\n');
  await writeFile(join(options.outDir, 'latest.json'), JSON.stringify(json, null, 2) + '\n');
  log(`results: ${join(options.outDir, `bench-${stamp}.json`)} and .md`);
  if (options.keepScratch) log(`scratch kept: ${scratch}`);
  else await rm(scratch, { recursive: true, force: true });
  // A client that got wrong bytes (or a setup that never ran) must not pass silently.
  if (fanoutRows.some((r) => !r.ok)) process.exitCode = 1;
}

main().then(
  // A request abandoned by a timed-out row may still hold a socket open; the results are written.
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
