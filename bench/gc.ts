// The `gc` workload family: the GC race harness as a longer soak (test/helpers/gc-race.ts, more rounds)
// on both shared setups, and the full mark pass over 100,000 blobs on both metadata stores. These start
// their own registries, so they run apart from the targets the other rows share, and report their own
// figures rather than a rate.
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runGcRace, raceSummaryLine } from '../test/helpers/gc-race.js';
import type { RaceSetup } from '../test/helpers/gc-race-cluster.js';
import { measureFullMark, type MarkStore } from './gc-mark.js';

export type GcFigures = Record<string, number | string>;

export interface GcWorkload {
  key: string;
  title: string;
  /** Figures for the report; `ok` false when a check failed (a dangling reference, an orphan left). */
  run(scratch: string, log: (line: string) => void): Promise<{ ok: boolean; figures: GcFigures }>;
}

export interface GcRow {
  key: string;
  title: string;
  ok: boolean;
  figures?: GcFigures;
  error?: string;
}

function soak(setup: RaceSetup, rounds: number): GcWorkload {
  const short = setup === 'filesystem+embedded' ? 'fs' : 's3';
  return {
    key: `gc-soak-${short}`,
    title: `GC race soak, ${setup}: 2 processes, 6 pushers × ${rounds} rounds, delay 0 s`,
    async run(_scratch, log) {
      const r = await runGcRace({
        setup,
        gc: { delaySeconds: 0, quarantineSeconds: 0, intervalSeconds: 1 },
        seed: 12,
        pushers: 6,
        reposPerPusher: 3,
        rounds,
        opsPerRound: 2,
        maxAttempts: 40,
        quietTimeoutMs: 120_000,
      });
      log(raceSummaryLine(r));
      const f = r.findings;
      for (const problem of [...f.dangling, ...f.mismatches, ...f.orphans].slice(0, 10)) log(`  ${problem}`);
      const bg = r.background;
      const retried = Object.entries(r.pushes.attempts).reduce((n, [attempts, count]) => n + (Number(attempts) > 1 ? count : 0), 0);
      const pushes = Object.values(r.pushes.attempts).reduce((a, b) => a + b, 0);
      return {
        ok: f.dangling.length === 0 && f.orphans.length === 0 && f.mismatches.length === 0,
        figures: {
          operations: Object.values(r.ops).reduce((a, b) => a + b, 0),
          'manifest pushes': r.pushes.manifestPuts,
          'blob uploads': r.pushes.blobUploads,
          'HEAD skips': r.pushes.headSkips,
          'mounts (refused)': `${r.pushes.mounts} (${r.pushes.mountFallbacks})`,
          'pushes retried': `${retried} of ${pushes}, at most ${Math.max(...Object.keys(r.pushes.attempts).map(Number))} attempts`,
          'passes (background with work + on demand)': `${bg.map((t) => t.passes).join(' + ')} + ${r.onDemand.passes}`,
          'items judged': bg.reduce((n, t) => n + t.examined, 0) + r.onDemand.examined,
          'blobs deleted': bg.reduce((n, t) => n + t.blobsDeleted, 0) + r.onDemand.blobsDeleted,
          'bytes freed': bg.reduce((n, t) => n + t.bytesFreed, 0) + r.onDemand.bytesFreed,
          'pass errors': bg.reduce((n, t) => n + t.errors + t.failedPasses, 0) + r.onDemand.errors,
          dangling: f.dangling.length,
          'orphans left': f.orphans.length,
          'race s': r.raceMs / 1000,
        },
      };
    },
  };
}

function fullMark(store: MarkStore, blobs: number): GcWorkload {
  return {
    key: `gc-mark-${blobs / 1000}k-${store}`,
    title: `GC full mark pass over ${blobs.toLocaleString('en-US')} blobs, ${store} metadata, filesystem storage`,
    async run(scratch, log) {
      const dir = await mkdtemp(join(scratch, `gc-mark-${store}-`));
      try {
        const m = await measureFullMark(store, blobs, dir);
        log(`gc mark ${store}: ${JSON.stringify(m)}`);
        return {
          ok: m.errors === 0 && m.blobsDeleted === m.orphans,
          figures: {
            'stored blobs': m.storedBlobs,
            'manifests / orphans': `${m.manifests} / ${m.orphans}`,
            'fill s': m.fillSeconds,
            'queueStored s': m.queueSeconds,
            passes: m.passes,
            'pass s': m.passSeconds,
            'items/s': m.itemsPerSecond,
            'blobs deleted': m.blobsDeleted,
            'peak RSS MiB': m.peakRssMiB,
            'of it anonymous MiB': m.peakAnonMiB,
            ...(m.redisMiB === undefined ? {} : { 'Redis used_memory MiB': m.redisMiB }),
          },
        };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

export function gcWorkloads(quick: boolean): GcWorkload[] {
  const rounds = quick ? 20 : 150;
  const blobs = quick ? 10_000 : 100_000;
  return [soak('filesystem+embedded', rounds), soak('s3+redis', rounds), fullMark('embedded', blobs), fullMark('redis', blobs)];
}

function show(value: number | string): string {
  if (typeof value === 'string') return value;
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

export function gcTable(rows: GcRow[]): string {
  const lines = ['| GC workload | Figures | Checks |', '|---|---|---|'];
  for (const row of rows) {
    const figures = row.figures
      ? Object.entries(row.figures)
          .map(([k, v]) => `${k} ${show(v)}`)
          .join('; ')
      : `failed (${(row.error ?? '').slice(0, 200).replace(/[|\n]/g, ' ')})`;
    lines.push(`| ${row.title} | ${figures} | ${row.ok ? 'passed' : '**failed**'} |`);
  }
  return lines.join('\n');
}
