// A real client against an immutable tag: skopeo's copy over it fails and shows Berth's message;
// the same image again (a CI retry) succeeds; `skopeo delete` of its manifest is refused.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { OciLayout } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);

async function skopeo(...args: string[]): Promise<{ ok: boolean; stderr: string }> {
  try {
    const { stderr } = await run('skopeo', args, { timeout: 120_000 });
    return { ok: true, stderr };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { ok: false, stderr: e.stderr ?? e.message };
  }
}

describe('skopeo and an immutable tag', () => {
  let reg: TestRegistry;
  let work: string;
  let host: string;
  before(async () => {
    reg = await startTestRegistry({ config: { immutableTags: { rules: [{ repositories: 'team/**', tags: ['v*'] }] }, gc: { enabled: false } } });
    host = reg.url.replace('http://', '');
    work = await mkdtemp(join(tmpdir(), 'berth-immutable-skopeo-'));
  });
  after(async () => {
    await reg?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('copy over the tag fails with the rule in the message; the same image again succeeds; delete is refused', async () => {
    const layout = await new OciLayout(join(work, 'src')).init();
    const first = await layout.addImage([20_000]);
    const second = await layout.addImage([21_000]);
    await layout.tag(first, 'first');
    await layout.tag(second, 'second');
    const copy = (tag: string) =>
      skopeo('copy', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout.dir}:${tag}`, `docker://${host}/team/app:v1.2.0`);

    const pushed = await copy('first');
    assert.ok(pushed.ok, pushed.stderr);
    const over = await copy('second');
    assert.equal(over.ok, false);
    assert.match(
      over.stderr,
      /tag v1\.2\.0 in team\/app is immutable \(rule immutableTags\.rules\[0\] \(team\/\*\* v\*\)\): it points at sha256:[0-9a-f]{64}; push under a new tag/,
    );
    const retry = await copy('first');
    assert.ok(retry.ok, retry.stderr);

    const deleted = await skopeo('delete', '--tls-verify=false', `docker://${host}/team/app:v1.2.0`);
    assert.equal(deleted.ok, false);
    assert.match(deleted.stderr, /cannot be deleted: tag v1\.2\.0 in team\/app is immutable/);
    const head = await fetch(`${reg.url}/v2/team/app/manifests/v1.2.0`, { method: 'HEAD' });
    assert.equal(head.headers.get('docker-content-digest'), first.digest);
  });
});
