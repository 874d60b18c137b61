// `berth config check` reads the replication registries' secrets as a server's start-up would: the
// ones an enabled rule uses, every problem at once.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { configCheck } from '../../server/config-check.js';

describe('config check: replication registries', () => {
  let dir: string;
  let file: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-repl-check-'));
    file = join(dir, 'berth.yaml');
    await writeFile(
      file,
      stringify({
        replication: {
          registries: [
            { name: 'idle', urls: ['https://idle.example'], username: 'u', passwordEnv: 'IDLE_PW' },
            { name: 'dr', urls: ['https://dr.example'], username: 'u', passwordEnv: 'DR_PW' },
            { name: 'ca', urls: ['https://ca.example'], caFile: join(dir, 'missing-ca.pem') },
          ],
          rules: [
            { name: 'to-dr', direction: 'push', registry: 'dr', repositories: ['team/**'] },
            { name: 'from-ca', direction: 'pull', registry: 'ca', repositories: ['base/**'] },
            { name: 'parked', direction: 'push', registry: 'idle', repositories: ['old/**'], enabled: false },
          ],
        },
      }),
    );
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('names the unset password variable and the unreadable CA file of registries enabled rules use, not the others; each named by its place in the list', () => {
    const checked = configCheck(file);
    assert.equal(checked.ok, false);
    assert.equal(checked.problems.length, 2, checked.problems.join('\n'));
    assert.match(checked.problems[0] ?? '', /replication\.registries\.1\.passwordEnv \(registry "dr"\): environment variable DR_PW is not set/);
    assert.match(checked.problems[1] ?? '', /replication\.registries\.2\.caFile.*missing-ca\.pem/);
    assert.equal(configCheck(file, { env: { DR_PW: 'x' } }).problems.length, 1);
  });
});
