import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ReplicationObservation } from '../../server/registry/replication/service.js';
import { OCI_MANIFEST, RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const MiB = 1024 * 1024;

/** A rule's bandwidthBytesPerSecond holds a real copy between two Berths back (a lower bound: the machine may be slower still). */
describe('replication: the bandwidth cap of a rule', () => {
  let b: TestRegistry;
  let a: TestRegistry;
  const runs: ReplicationObservation[] = [];

  before(async () => {
    b = await startTestRegistry();
    a = await startTestRegistry({
      config: {
        replication: {
          registries: [{ name: 'b', urls: [b.url] }],
          rules: [
            {
              name: 'capped',
              direction: 'push',
              registry: 'b',
              repositories: ['team/**'],
              onPush: false,
              reconcileSeconds: 0,
              bandwidthBytesPerSecond: 2 * MiB,
            },
          ],
        },
      },
      deps: { onReplication: (o) => (o.kind === 'run' ? runs.push(o) : undefined) },
    });
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  it('takes at least about 1.5 s to copy 4 MiB at 2 MiB/s', async () => {
    const { manifest } = await new RegistryClient(a.url).pushImage('team/big', 'v1', [4 * MiB]);
    const started = performance.now();
    await a.app.replication.service.runNow('capped');
    const elapsed = performance.now() - started;
    const run = runs[0];
    assert.ok(run?.kind === 'run');
    assert.equal(run.summary.result, 'ok', run.summary.lastError);
    assert.ok(run.summary.bytes >= 4 * MiB, String(run.summary.bytes));
    // 4 MiB at 2 MiB/s less the 0.25 s burst the bucket starts with is 1.75 s.
    assert.ok(elapsed >= 1500, `copied in ${Math.round(elapsed)} ms`);
    const head = await fetch(`${b.url}/v2/team/big/manifests/v1`, { method: 'HEAD', headers: { Accept: OCI_MANIFEST } });
    assert.equal(head.headers.get('docker-content-digest'), manifest.digest);
  });
});
