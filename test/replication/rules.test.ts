// What a compiled rule covers: repositories, tags (glob, regex, semver together), the name rewrite both
// ways (sourceName decides what a delete may touch), platforms and backup tags.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replicationRuleSchema, type ReplicationRuleInput } from '../../server/registry/replication/config.js';
import { normalisePlatform, parsePlatform, platformMatches } from '../../server/registry/replication/platforms.js';
import { compileRule, type ReplicationRule } from '../../server/registry/replication/rules.js';

function rule(overrides: Partial<ReplicationRuleInput> = {}): ReplicationRule {
  return compileRule(replicationRuleSchema.parse({ name: 'r', direction: 'push', registry: 'b', repositories: ['**'], ...overrides }));
}

const DIGEST = `sha256:${'ab12'.repeat(16)}`;

describe('replication rules', () => {
  it('covers repositories by glob, less the excluded ones', () => {
    const r = rule({ repositories: ['team/**', 'tools/*', 'base'], excludeRepositories: ['team/scratch/**', 'tools/old-*'] });
    const table: Array<[string, boolean]> = [
      ['team', true],
      ['team/api', true],
      ['team/api/v2', true],
      ['team/scratch', false],
      ['team/scratch/x', false],
      ['teamwork/api', false],
      ['tools/jq', true],
      ['tools/jq/x', false],
      ['tools/old-jq', false],
      ['base', true],
      ['base/x', false],
      ['other', false],
      ['Team/api', false],
      ['', false],
    ];
    for (const [name, covered] of table) assert.equal(r.coversRepository(name), covered, name);
  });

  it('covers tags when the globs, the regex and the semver range all pass', () => {
    assert.equal(rule().coversTag('anything'), true);
    const table: Array<[Partial<ReplicationRuleInput>, string, boolean]> = [
      [{ tags: ['v*'] }, 'v1.2.3', true],
      [{ tags: ['v*'] }, '1.2.3', false],
      [{ tags: ['release-?'] }, 'release-1', true],
      [{ tags: ['release-?'] }, 'release-10', false],
      [{ tags: ['**'] }, 'latest', true],
      [{ tagRegex: '^v\\d+\\.\\d+$' }, 'v1.25', true],
      [{ tagRegex: '^v\\d+\\.\\d+$' }, 'v1.25.1', false],
      [{ tagRegex: 'rc' }, 'v1-rc2', true],
      [{ tagSemver: '^1.2' }, 'v1.4.0', true],
      [{ tagSemver: '^1.2' }, '1.4.0-rc.1', false],
      [{ tagSemver: '^1.2' }, 'latest', false],
      [{ tagSemver: '^1.2' }, '1.4', false],
      [{ tags: ['v*'], tagSemver: '^1.2' }, '1.4.0', false],
      [{ tags: ['v*'], tagSemver: '^1.2' }, 'v1.4.0', true],
      [{ tags: ['v*'], tagRegex: '-alpine$', tagSemver: '>=1.2.0' }, 'v1.3.0-alpine', false],
      [{ tags: ['*-alpine'], tagRegex: '^1\\.' }, '1.3-alpine', true],
      [{ tags: ['*-alpine'], tagRegex: '^1\\.' }, '2.3-alpine', false],
    ];
    for (const [overrides, tag, covered] of table) assert.equal(rule(overrides).coversTag(tag), covered, `${JSON.stringify(overrides)} ${tag}`);
  });

  it('rewrites names and inverts the rewrite', () => {
    const table: Array<[Partial<ReplicationRuleInput>, string, string | undefined]> = [
      [{}, 'team/api', 'team/api'],
      [{ destination: { addPrefix: 'mirror' } }, 'team/api', 'mirror/team/api'],
      [{ destination: { addPrefix: 'dc2/mirror/' } }, 'api', 'dc2/mirror/api'],
      [{ destination: { stripPrefix: 'team' } }, 'team/api', 'api'],
      [{ destination: { stripPrefix: 'team' } }, 'team/api/v2', 'api/v2'],
      [{ destination: { stripPrefix: 'team' } }, 'teamwork/api', undefined],
      [{ destination: { stripPrefix: 'team' } }, 'team', undefined],
      [{ destination: { stripPrefix: 'team', addPrefix: 'prod' } }, 'team/api', 'prod/api'],
      [{ destination: { stripPrefix: 'team', addPrefix: 'prod' } }, 'team', 'prod'],
      [{ destination: { stripPrefix: 'a/b', addPrefix: 'c' } }, 'a/b/x', 'c/x'],
      [{ destination: { stripPrefix: 'a/b', addPrefix: 'c' } }, 'a/bx', undefined],
      [{ destination: { addPrefix: 'p'.repeat(250) } }, 'abcdef', undefined],
      [{ repositories: ['team/**'], excludeRepositories: ['team/x'] }, 'team/x', undefined],
    ];
    for (const [overrides, source, target] of table) {
      const r = rule(overrides);
      const label = `${JSON.stringify(overrides)} ${source}`;
      assert.equal(r.targetName(source), target, label);
      assert.equal(r.coversRepository(source), target !== undefined, label);
      if (target !== undefined) assert.equal(r.sourceName(target), source, `inverse of ${label}`);
    }
  });

  it('claims no target it would not have written', () => {
    const r = rule({ repositories: ['team/**'], excludeRepositories: ['team/secret'], destination: { stripPrefix: 'team', addPrefix: 'mirror' } });
    const table: Array<[string, string | undefined]> = [
      ['mirror/api', 'team/api'],
      ['mirror', 'team'],
      ['mirror/secret', undefined],
      ['api', undefined],
      ['mirrors/api', undefined],
      ['other/mirror/api', undefined],
    ];
    for (const [target, source] of table) assert.equal(r.sourceName(target), source, target);
    const plain = rule({ repositories: ['apps/*'] });
    assert.equal(plain.sourceName('apps/web'), 'apps/web');
    assert.equal(plain.sourceName('apps/web/x'), undefined);
    assert.equal(plain.sourceName('other'), undefined);
  });

  it('lists the plain repository names for registries without a catalog', () => {
    const r = rule({
      repositories: ['library/nginx', 'team/**', 'tools/?q', 'library/redis', 'library/nginx', 'library/old'],
      excludeRepositories: ['library/old'],
    });
    assert.deepEqual(r.exactRepositories(), ['library/nginx', 'library/redis']);
  });

  it('resolves onPush by direction', () => {
    assert.equal(rule().onPush, true);
    assert.equal(rule({ onPush: false }).onPush, false);
    assert.equal(rule({ direction: 'pull' }).onPush, false);
  });

  it('names backup tags from the template', () => {
    assert.equal(rule().backupTagFor('v1', DIGEST), 'v1-replaced-ab12ab12ab12');
    assert.equal(rule({ backupTag: 'old-{tag}-{digest}' }).backupTagFor('v1', DIGEST), `old-v1-${'ab12'.repeat(16)}`);
    // 128 characters is the most a tag holds: the copier is told rather than given a tag the target refuses.
    assert.equal(rule().backupTagFor('t'.repeat(110), DIGEST), undefined);
    assert.equal(rule().backupTagFor('t'.repeat(103), DIGEST), `${'t'.repeat(103)}-replaced-ab12ab12ab12`);
  });

  it('matches platforms as containerd normalises them', () => {
    assert.equal(rule().matchesPlatform({ os: 'windows', architecture: 'amd64' }), true);
    const r = rule({ platforms: ['linux/amd64', 'linux/arm64'] });
    const table: Array<[{ os: string; architecture: string; variant?: string }, boolean]> = [
      [{ os: 'linux', architecture: 'amd64' }, true],
      [{ os: 'linux', architecture: 'amd64', variant: 'v3' }, true],
      [{ os: 'linux', architecture: 'x86_64' }, true],
      [{ os: 'linux', architecture: 'arm64' }, true],
      [{ os: 'linux', architecture: 'arm64', variant: 'v8' }, true],
      [{ os: 'linux', architecture: 'aarch64' }, true],
      [{ os: 'linux', architecture: 'arm64', variant: 'v9' }, false],
      [{ os: 'linux', architecture: 'arm', variant: 'v7' }, false],
      [{ os: 'windows', architecture: 'amd64' }, false],
      [{ os: 'unknown', architecture: 'unknown' }, false],
    ];
    for (const [platform, matched] of table) assert.equal(r.matchesPlatform(platform), matched, JSON.stringify(platform));
    const v8 = rule({ platforms: ['linux/arm64/v8', 'linux/arm/v6'] });
    assert.equal(v8.matchesPlatform({ os: 'linux', architecture: 'arm64' }), true);
    assert.equal(v8.matchesPlatform({ os: 'linux', architecture: 'arm', variant: 'v6' }), true);
    assert.equal(v8.matchesPlatform({ os: 'linux', architecture: 'arm' }), false, 'arm alone is arm/v7');
    assert.equal(v8.matchesPlatform({ os: 'linux', architecture: 'amd64' }), false);
  });

  it('parses platform filters with clear errors', () => {
    assert.deepEqual(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(parsePlatform('Linux/AMD64'), { os: 'linux', architecture: 'amd64', variant: '' });
    assert.deepEqual(normalisePlatform({ os: 'linux', architecture: 'armhf' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.equal(platformMatches(parsePlatform('linux/386'), { os: 'linux', architecture: 'i386' }), true);
    for (const [text, message] of [
      ['linux', /must be os\/architecture or os\/architecture\/variant/],
      ['linux/arm64/v8/x', /must be os\/architecture/],
      ['linux//v8', /empty or malformed part/],
      ['linux/amd 64', /empty or malformed part/],
    ] as const) {
      assert.throws(() => parsePlatform(text), message, text);
    }
  });
});
