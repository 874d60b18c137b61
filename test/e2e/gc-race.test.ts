// Issue 12's race harness in CI: pushers race background GC (0 s delay) in two Berth processes over
// one storage and one metadata store. Seeded and bounded: the same operations on every run; GC's
// timing only changes how often a push must be retried, and every push must get through.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { raceSummaryLine, runGcRace, type RaceOptions } from '../helpers/gc-race.js';
import type { RaceSetup } from '../helpers/gc-race-cluster.js';

const BASE: Omit<RaceOptions, 'setup' | 'gc'> = {
  seed: 12,
  pushers: 4,
  reposPerPusher: 3,
  rounds: 12,
  opsPerRound: 2,
  // With no delay a blob is fair game from the moment it is uploaded until the manifest lands, so on
  // S3 a push may lose several attempts in a row to passes that run back to back (up to 8 in CI-sized
  // runs here, 16 in a soak on a loaded machine); the bound is there to catch a push that can never
  // get through, and the summary shows how many pushes needed how many attempts.
  maxAttempts: 30,
  quietTimeoutMs: 20_000,
};

function raceCase(setup: RaceSetup, quarantineSeconds: number, overrides: Partial<RaceOptions> = {}): void {
  it(`${setup}, quarantine ${quarantineSeconds} s: no dangling reference, every push gets through, no orphan left`, async () => {
    const report = await runGcRace({ ...BASE, ...overrides, setup, gc: { delaySeconds: 0, quarantineSeconds, intervalSeconds: 1 } });
    console.log(raceSummaryLine(report));
    for (const line of report.pushes.hardest) console.log(`  ${line}`);
    const { findings } = report;
    assert.deepEqual(findings.dangling, [], 'every tag, manifest and reference resolves');
    assert.deepEqual(findings.mismatches, [], 'the registry holds what the pushers left');
    assert.deepEqual(findings.orphans, [], `every blob nothing references is gone (queued for later: ${report.quiet.later.join(', ')})`);
    for (const [i, t] of report.background.entries()) {
      assert.equal(t.failedPasses + t.refusedPasses, 0, `process ${i}'s background passes: ${t.problems.join('; ')}`);
    }
    const passErrors = report.onDemand.errors + report.background.reduce((n, t) => n + t.errors, 0);
    assert.equal(passErrors, 0, 'no pass gave a deletion up or failed to delete (those are logged as gc_error)');
    assert.ok(report.background.reduce((n, t) => n + t.passes, 0) > 0, 'background passes did some of the work');
    assert.ok(report.pushes.headSkips > 0 && report.pushes.mounts + report.pushes.mountFallbacks > 0, 'the race reused blobs and mounted');
    assert.ok(report.onDemand.blobsDeleted + report.background.reduce((n, t) => n + t.blobsDeleted, 0) > 0, 'GC deleted something');
    assert.deepEqual(report.exitCodes, [0, 0], 'both processes shut down cleanly');
  });
}

describe('GC race harness: two processes, pushers against background GC', () => {
  raceCase('filesystem+embedded', 0);
  raceCase('s3+redis', 0);
  // The undo window on: orphans sit quarantined first, and re-pushes revive them.
  raceCase('filesystem+embedded', 2, { seed: 1212, rounds: 8 });
});
