import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { instrument } from '../../storage-drivers/blob/instrumented.js';
import { MemoryDriver } from '../../storage-drivers/blob/memory.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { instrumentMetadata } from '../../server/operations/metadata-instrumented.js';
import { Metrics } from '../../server/operations/metrics.js';

const scratch = mkdtempSync(join(tmpdir(), 'berth-instr-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function count(text: string, line: RegExp): number {
  const m = line.exec(text);
  return m ? Number(m[1]) : 0;
}

describe('storage and metadata instrumentation feed the metrics', () => {
  it('times blob driver operations and counts their errors', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const driver = instrument(new MemoryDriver(), metrics.observeStorage);
    await driver.put('blobs/sha256/aa/a', Buffer.from('hello'));
    await driver.stat('blobs/sha256/aa/a');
    await assert.rejects(driver.stat('blobs/sha256/bb/b'));
    const text = await metrics.exposition();
    assert.equal(count(text, /^berth_storage_operation_duration_seconds_count\{driver="memory",op="stat"\} (\d+)$/m), 2);
    assert.equal(count(text, /^berth_storage_operation_errors_total\{driver="memory",op="stat",error="BlobNotFoundError"\} (\d+)$/m), 1);
  });

  it('times every metadata store call, with errors, on the embedded store', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const inner = new EmbeddedStore({ path: join(scratch, 'meta') });
    const store = instrumentMetadata(inner, metrics.observeMetadata);
    try {
      await store.ping();
      assert.equal(await store.resolveTag('lib/a', 'latest'), undefined);
      assert.equal(await store.resolveTag('lib/a', 'v1'), undefined);
      assert.deepEqual(await store.listTags('lib/a', {}), []);
      assert.equal(await store.events.head(), undefined);
      assert.equal(await store.replication.getRuleState('mirror'), undefined);
      assert.equal(store.name, inner.name);
    } finally {
      await store.close();
    }
    // A closed store refuses work: a real failure for the error counter.
    await assert.rejects(async () => store.resolveTag('lib/a', 'latest'));
    const text = await metrics.exposition();
    const label = `store="${inner.name}"`;
    assert.equal(count(text, new RegExp(`^berth_metadata_operation_duration_seconds_count\\{${label},op="resolveTag"\\} (\\d+)$`, 'm')), 3);
    assert.equal(count(text, new RegExp(`^berth_metadata_operation_duration_seconds_count\\{${label},op="close"\\} (\\d+)$`, 'm')), 1);
    assert.equal(count(text, new RegExp(`^berth_metadata_operation_duration_seconds_count\\{${label},op="events.head"\\} (\\d+)$`, 'm')), 1);
    assert.equal(count(text, new RegExp(`^berth_metadata_operation_duration_seconds_count\\{${label},op="replication.getRuleState"\\} (\\d+)$`, 'm')), 1);
    assert.equal(count(text, new RegExp(`^berth_metadata_operation_errors_total\\{${label},op="resolveTag",error="[^"]+"\\} (\\d+)$`, 'm')), 1);
  });
});
