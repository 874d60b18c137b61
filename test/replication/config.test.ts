// The `replication` section: defaults, a full config read from YAML, and every mistake named by its key.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../../server/config.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

function problemsOf(replication: unknown): string[] {
  try {
    parseConfig({ replication });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

const dc2 = { name: 'dc2', urls: ['https://registry.dc2.example'] };
const push = { name: 'to-dc2', direction: 'push', registry: 'dc2', repositories: ['team/**'] };
const withRule = (rule: Record<string, unknown>, registries: unknown[] = [dc2]) => ({ registries, rules: [{ ...push, ...rule }] });

const YAML = `
replication:
  registries:
    - name: dc2
      urls: [https://registry.dc2.example, https://registry-b.dc2.example]
      username: replicator
      passwordFile: /run/secrets/dc2
      caFile: /etc/berth/dc2-ca.pem
      requestsPerSecond: 20
    - name: hub
      urls: [https://registry-1.docker.io]
  rules:
    - name: apps-to-dc2
      direction: push
      registry: dc2
      repositories: ["team/**"]
      excludeRepositories: ["team/scratch/**"]
      tags: ["v*"]
      tagSemver: ">=1.2.0 <2"
      destination: { stripPrefix: team, addPrefix: mirror/team }
      platforms: [linux/amd64, linux/arm64]
      conflict: backup
      deletes: true
      bandwidthBytesPerSecond: 10485760
    - name: nginx-from-hub
      direction: pull
      registry: hub
      repositories: [library/nginx]
      tagRegex: '^1\\.\\d+-alpine$'
      destination: { addPrefix: hub }
      reconcileSeconds: 3600
  runTimeoutSeconds: 900
`;

describe('replication config', () => {
  let scratch: ScratchDir;
  before(async () => {
    scratch = await makeScratchDir('replication-config');
  });
  after(() => scratch.remove());

  it('has defaults', () => {
    assert.deepEqual(parseConfig({}).replication, { registries: [], rules: [], leaseSeconds: 60, runTimeoutSeconds: 600 });
    const [rule] = parseConfig({ replication: withRule({}) }).replication.rules;
    assert.deepEqual(rule, {
      ...push,
      excludeRepositories: [],
      tags: ['*'],
      destination: {},
      platforms: [],
      referrers: true,
      conflict: 'skip',
      backupTag: '{tag}-replaced-{digest12}',
      deletes: false,
      reconcileSeconds: 900,
      bandwidthBytesPerSecond: 0,
      chunkBytes: 8 * 1024 * 1024,
      concurrency: 4,
      enabled: true,
    });
    const [registry] = parseConfig({ replication: withRule({}) }).replication.registries;
    assert.deepEqual(registry, { ...dc2, timeoutSeconds: 30, maxConcurrent: 16, requestsPerSecond: 0, maxWaitSeconds: 30 });
  });

  it('reads a full section from YAML', async () => {
    const file = join(scratch.path, 'berth.yaml');
    await writeFile(file, YAML);
    const { replication } = loadConfig({ file, env: {} });
    assert.equal(replication.registries.length, 2);
    assert.equal(replication.registries[0]?.passwordFile, '/run/secrets/dc2');
    const [apps, nginx] = replication.rules;
    assert.deepEqual(apps?.destination, { stripPrefix: 'team', addPrefix: 'mirror/team' });
    assert.equal(apps?.conflict, 'backup');
    assert.equal(nginx?.tagRegex, '^1\\.\\d+-alpine$');
    assert.equal(replication.runTimeoutSeconds, 900);
  });

  it('takes the section from the environment as JSON', () => {
    const config = loadConfig({ env: { BERTH_REPLICATION_REGISTRIES: JSON.stringify([dc2]), BERTH_REPLICATION_RULES: JSON.stringify([push]) } });
    assert.equal(config.replication.rules[0]?.registry, 'dc2');
    assert.throws(
      () => loadConfig({ env: { BERTH_REPLICATION_RULES: JSON.stringify([push]) } }),
      (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /replication\.rules\.0\.registry: no registry named "dc2"/.test(p)),
    );
  });

  it('names each bad key', () => {
    const cases: Array<[unknown, RegExp]> = [
      [withRule({}, []), /replication\.rules\.0\.registry: no registry named "dc2" in replication\.registries$/],
      [withRule({ registry: 'dc3' }), /replication\.rules\.0\.registry: no registry named "dc3" in replication\.registries \(there are: dc2\)/],
      [{ registries: [dc2, dc2] }, /replication\.registries\.1\.name: registry name "dc2" is used twice/],
      [{ registries: [dc2], rules: [push, push] }, /replication\.rules\.1\.name: rule name "to-dc2" is used twice/],
      [{ registries: [{ ...dc2, name: 'DC2' }] }, /replication\.registries\.0\.name: must be one path segment/],
      [withRule({ name: 'to/dc2' }), /replication\.rules\.0\.name: must be one path segment/],
      [{ registries: [{ ...dc2, urls: ['ftp://x.example'] }] }, /replication\.registries\.0\.urls\.0: must be an http or https URL/],
      [{ registries: [{ ...dc2, urls: ['https://u:p@x.example'] }] }, /replication\.registries\.0\.urls\.0: must not carry credentials/],
      [{ registries: [{ ...dc2, urls: ['https://x.example/?a=1'] }] }, /replication\.registries\.0\.urls\.0: must not have a query/],
      [
        { registries: [{ ...dc2, urls: ['https://x.example', 'https://x.example/'] }] },
        /replication\.registries\.0\.urls\.1: https:\/\/x\.example\/ is given twice/,
      ],
      [{ registries: [{ ...dc2, urls: [] }] }, /replication\.registries\.0\.urls/],
      [
        { registries: [{ ...dc2, username: 'u', passwordFile: '/a', passwordEnv: 'B' }] },
        /registries\.0\.passwordEnv: give passwordFile or passwordEnv, not both/,
      ],
      [{ registries: [{ ...dc2, passwordFile: '/a' }] }, /registries\.0\.passwordFile: only used with username/],
      [{ registries: [{ ...dc2, urls: ['http://x.example'], caFile: '/ca.pem' }] }, /registries\.0\.caFile: only used for https URLs/],
      [{ registries: [{ ...dc2, password: 'inline' }] }, /unknown key 'replication\.registries\.0\.password'/],
      [{ registries: [{ ...dc2, timeoutSeconds: 0 }] }, /registries\.0\.timeoutSeconds/],
      [withRule({ direction: 'both' }), /replication\.rules\.0\.direction/],
      [withRule({ repositories: [] }), /replication\.rules\.0\.repositories/],
      [withRule({ repositories: ['team//app'] }), /rules\.0\.repositories\.0: "team\/\/app" is not a valid repository name/],
      [withRule({ repositories: ['Team/**'] }), /rules\.0\.repositories\.0: a repository glob holds lowercase letters/],
      [withRule({ excludeRepositories: ['team/ x'] }), /rules\.0\.excludeRepositories\.0: a repository glob holds/],
      [withRule({ tags: ['v1+*'] }), /rules\.0\.tags\.0: a tag glob holds letters/],
      [withRule({ tags: [] }), /replication\.rules\.0\.tags/],
      [withRule({ tags: ['v*/x'] }), /rules\.0\.tags\.0: a tag glob holds .*\(a tag has no "\/"\)/],
      [withRule({ tagRegex: '^v(1' }), /rules\.0\.tagRegex: not a valid regular expression: .*Unterminated group/],
      [withRule({ tagSemver: '^1.2 || latest' }), /rules\.0\.tagSemver: not a semver range: cannot read "latest" in "\^1\.2 \|\| latest"/],
      [withRule({ tagSemver: '' }), /rules\.0\.tagSemver: not a semver range/],
      [withRule({ destination: { addPrefix: 'Mirror' } }), /rules\.0\.destination\.addPrefix: must be a repository path/],
      [withRule({ destination: { stripPrefix: '/team' } }), /rules\.0\.destination\.stripPrefix: must be a repository path/],
      [withRule({ destination: { rename: 'x' } }), /unknown key 'replication\.rules\.0\.destination\.rename'/],
      [withRule({ destination: { stripPrefix: 'other' } }), /rules\.0\.repositories\.0: "team\/\*\*" never starts with stripPrefix "other"\//],
      [withRule({ platforms: ['linux'] }), /rules\.0\.platforms\.0: platform "linux" must be os\/architecture/],
      [withRule({ conflict: 'merge' }), /rules\.0\.conflict/],
      [withRule({ backupTag: '{tag}-{sha}' }), /rules\.0\.backupTag: unknown placeholder \{sha\}/],
      [withRule({ backupTag: 'old-{digest12}' }), /rules\.0\.backupTag: must contain \{tag\}/],
      [withRule({ backupTag: '{tag}' }), /rules\.0\.backupTag: must add something to \{tag\}/],
      [withRule({ backupTag: '{tag}/old' }), /rules\.0\.backupTag: gives invalid tags \("v1" would become "v1\/old"\)/],
      [withRule({ backupTag: '-{tag}' }), /rules\.0\.backupTag: gives invalid tags/],
      [withRule({ backupTag: `{tag}-${'x'.repeat(127)}` }), /rules\.0\.backupTag: gives invalid tags/],
      [withRule({ direction: 'pull', onPush: true }), /rules\.0\.onPush: only for push rules/],
      [withRule({ reconcileSeconds: -1 }), /rules\.0\.reconcileSeconds/],
      [withRule({ chunkBytes: 1024 * 1024 }), /rules\.0\.chunkBytes/],
      [withRule({ concurrency: 0 }), /rules\.0\.concurrency/],
      [withRule({ bandwidthBytesPerSecond: 1.5 }), /rules\.0\.bandwidthBytesPerSecond/],
      [withRule({ schedule: '@hourly' }), /unknown key 'replication\.rules\.0\.schedule'/],
      [{ leaseSeconds: 120, runTimeoutSeconds: 60 }, /replication\.runTimeoutSeconds: must be at least leaseSeconds/],
      [{ enabled: true }, /unknown key 'replication\.enabled'/],
    ];
    for (const [replication, message] of cases) {
      const problems = problemsOf(replication);
      assert.ok(
        problems.some((p) => message.test(p)),
        `${JSON.stringify(replication)}: expected ${message}, got ${JSON.stringify(problems)}`,
      );
    }
  });

  it('accepts the edges', () => {
    const good: unknown[] = [
      withRule({ direction: 'pull', onPush: false }),
      withRule({ destination: { stripPrefix: 'team/' } }),
      withRule({ repositories: ['**'], destination: { stripPrefix: 'team' } }),
      withRule({ repositories: ['te*'], destination: { stripPrefix: 'team' } }),
      withRule({ tagSemver: '*', tagRegex: '.', platforms: ['linux/arm/v7', 'windows/amd64'] }),
      withRule({ reconcileSeconds: 0, bandwidthBytesPerSecond: 0, chunkBytes: 5 * 1024 * 1024 }),
      withRule({ conflict: 'backup', backupTag: 'bak-{digest}-{tag}' }),
      { registries: [{ ...dc2, username: 'u', passwordEnv: 'DC2_PASSWORD' }], leaseSeconds: 30, runTimeoutSeconds: 30 },
    ];
    for (const replication of good) assert.deepEqual(problemsOf(replication), [], JSON.stringify(replication));
    const [rule] = parseConfig({ replication: withRule({ destination: { stripPrefix: 'team/' } }) }).replication.rules;
    assert.equal(rule?.destination.stripPrefix, 'team');
  });
});
