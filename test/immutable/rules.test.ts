// The pieces that decide immutability: the RE2 matcher for token patterns, the claim reader, the
// configured rules and their validation at start-up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileRe2, Re2SyntaxError } from '../../auth/re2.js';
import { readTagImmutability } from '../../auth/tag-patterns.js';
import { readAccessClaim } from '../../auth/token.js';
import { ConfigError, parseConfig } from '../../server/config.js';
import { ImmutableTagRules } from '../../server/registry/immutable/rules.js';

describe('RE2 tag patterns', () => {
  const cases: Array<[string, string[], string[]]> = [
    ['^v\\d+\\.\\d+\\.\\d+$', ['v1.2.3', 'v10.0.0'], ['v1.2', 'xv1.2.3', 'v1.2.3-rc']],
    ['^v?(\\d+)\\.(\\d+)\\.(\\d+)(?:-([0-9A-Za-z-.]+))?(?:\\+([0-9A-Za-z-.]+))?$', ['1.2.3', 'v1.2.3-rc.1', '1.0.0+build.5'], ['1.2', 'v1.2.3_x']],
    ['release', ['release', 'pre-release-2', 'release-1'], ['rel']],
    ['^(main|stable)-[a-f0-9]{7,40}$', ['main-abcdef0', 'stable-0123456789'], ['main-abc', 'dev-abcdef0']],
    ['(?i)^LATEST$', ['latest', 'Latest'], ['latest2']],
    ['^(?P<major>\\d+)$', ['12'], ['12a']],
    ['^[[:alpha:]]+$', ['abc'], ['ab1']],
    ['^[^-]+$', ['abc.1'], ['a-b']],
    ['\\Av1\\z', ['v1'], ['v12']],
    ['\\bv1\\b', ['v1', 'x.v1.y'], ['xv1', 'v12']],
    ['^\\Qa.b\\E$', ['a.b'], ['axb']],
    ['^x{2,3}$', ['xx', 'xxx'], ['x', 'xxxx']],
    ['^a{2,}$', ['aa', 'aaaaa'], ['a']],
    ['^$|^a*$', ['', 'aaa'], ['b']],
  ];
  for (const [pattern, yes, no] of cases) {
    it(`${pattern} matches as RE2 does (unanchored unless anchored)`, () => {
      const re = compileRe2(pattern);
      for (const tag of yes) assert.equal(re.test(tag), true, `${pattern} should match ${tag}`);
      for (const tag of no) assert.equal(re.test(tag), false, `${pattern} should not match ${tag}`);
    });
  }

  it('refuses what RE2 refuses or Berth does not support, as a syntax error', () => {
    for (const bad of ['(a', 'a)', '[a-', '*a', 'a**', '(?=a)', '(?<!a)b', '\\1', '\\pL', 'x{1001}', '[z-a]', '(?U)a', '\\']) {
      assert.throws(() => compileRe2(bad), Re2SyntaxError, bad);
    }
  });

  it('matches pathological patterns in linear time (no backtracking)', () => {
    const tag = 'a'.repeat(128);
    const started = process.hrtime.bigint();
    for (const p of ['(a|a)*b', '(a+)+b', 'a*a*a*a*a*a*a*a*a*a*a*a*b', '(a|aa)*c', '^(\\w+\\s?)*$x']) assert.equal(compileRe2(p).test(tag), false, p);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    // A backtracking engine takes minutes on these; the NFA takes milliseconds.
    assert.ok(ms < 2000, `took ${ms} ms`);
  });

  it('refuses a pattern whose program would be huge', () => {
    assert.throws(() => compileRe2('((a{100}){100})'), /too large/);
  });
});

describe('the access claim: meta.tag_immutable_patterns (GitLab shape)', () => {
  it('reads the patterns per repository entry and leaves the grants as they were', () => {
    const claim = readAccessClaim({
      access: [
        { type: 'repository', name: 'team/app', actions: ['pull', 'push'], meta: { project_path: 'team/app', tag_immutable_patterns: ['^v\\d+', 'stable'] } },
        { type: 'repository', name: 'team/app', actions: ['delete'], meta: { tag_immutable_patterns: ['^rel-'] } },
        { type: 'repository', name: 'team/other', actions: ['pull'] },
        { type: 'registry', name: 'catalog', actions: ['*'], meta: { tag_immutable_patterns: ['x'] } },
      ],
    });
    assert.deepEqual(
      claim.access.map((a) => a.name),
      ['team/app', 'team/app', 'team/other', 'catalog'],
    );
    assert.deepEqual([...(claim.tagImmutability?.keys() ?? [])], ['team/app']);
    const app = claim.tagImmutability?.get('team/app');
    assert.deepEqual(
      app?.patterns.map((p) => p.source),
      ['^v\\d+', 'stable', '^rel-'],
    );
    assert.equal(readAccessClaim({ access: [{ type: 'repository', name: 'a', actions: ['pull'] }] }).tagImmutability, undefined);
  });

  it('keeps what it cannot use as unusable (too long, not RE2, not a string, too many)', () => {
    const parsed = readTagImmutability({ tag_immutable_patterns: ['ok', 'x'.repeat(101), '(?=a)', 42, ...Array.from({ length: 40 }, (_, i) => `p${i}`)] });
    assert.ok(parsed);
    assert.deepEqual(
      parsed.unusable.slice(0, 3).map((u) => u.reason),
      ['longer than 100 characters', 'unsupported group syntax (?=a): RE2 has no lookaround or backreferences', 'not a string'],
    );
    assert.ok(parsed.unusable.some((u) => u.reason === 'more than 32 patterns'));
    assert.equal(readTagImmutability({ tag_immutable_patterns: 'v*' })?.unusable[0]?.reason, 'tag_immutable_patterns is not a list');
    assert.equal(readTagImmutability({ tag_immutable_patterns: [] }), undefined);
  });
});

describe('ImmutableTagRules', () => {
  const rules = new ImmutableTagRules(
    parseConfig({
      immutableTags: {
        rules: [
          { repositories: 'team/**', tags: ['v*'], description: 'releases' },
          { repositories: ['base/*', 'tools/node'], tags: 'stable-??' },
        ],
      },
    }).immutableTags.rules,
  );

  it('matches repository globs as the auth rules do and tag globs with * and ?', () => {
    assert.equal(rules.match('team/app', 'v1.2.0')?.rule, 'immutableTags.rules[0] (team/** v*)');
    assert.equal(rules.match('team/app', 'v1.2.0')?.description, 'releases');
    assert.equal(rules.match('team', 'v1')?.index, 0);
    assert.equal(rules.match('team/app', 'latest'), undefined);
    assert.equal(rules.match('teams/app', 'v1'), undefined);
    assert.equal(rules.match('base/alpine', 'stable-01')?.rule, 'immutableTags.rules[1] (base/*, tools/node stable-??)');
    assert.equal(rules.match('base/x/alpine', 'stable-01'), undefined);
    assert.equal(rules.match('tools/node', 'stable-1'), undefined);
    assert.deepEqual(
      rules.forRepository('team/app').map((r) => r.index),
      [0],
    );
  });

  it('adds token patterns but never removes a configured rule', () => {
    const extra = readTagImmutability({ tag_immutable_patterns: ['^release-'] });
    assert.equal(rules.match('other/app', 'release-1', extra)?.rule, 'token claim tag_immutable_patterns (^release-)');
    assert.equal(rules.match('other/app', 'v1', extra), undefined);
    assert.equal(rules.match('team/app', 'v1', extra)?.source, 'config');
    const broken = readTagImmutability({ tag_immutable_patterns: ['(unclosed'] });
    assert.match(
      rules.match('other/app', 'anything', broken)?.rule ?? '',
      /^token claim tag_immutable_patterns \(unusable pattern "\(unclosed": missing closing \)\)$/,
    );
  });

  it('refuses bad configuration at start-up, naming the key', () => {
    const problems = (input: unknown) => {
      try {
        parseConfig(input);
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.problems;
      }
    };
    assert.match(
      problems({ immutableTags: { rules: [{ repositories: 'Team/*', tags: ['v*'] }] } }).join('\n'),
      /immutableTags\.rules\.0\.repositories: .*lowercase/,
    );
    assert.match(
      problems({ immutableTags: { rules: [{ repositories: 'team/*', tags: ['v/1'] }] } }).join('\n'),
      /immutableTags\.rules\.0\.tags\.0: .*tag glob/,
    );
    assert.match(problems({ immutableTags: { rules: [{ repositories: 'team/*', tags: [] }] } }).join('\n'), /immutableTags\.rules\.0\.tags/);
    assert.match(
      problems({ immutableTags: { rules: [{ repositories: 'team/*', tags: ['v*'], retain: true }] } }).join('\n'),
      /unknown key 'immutableTags\.rules\.0\.retain'/,
    );
    assert.deepEqual(parseConfig({}).immutableTags, { rules: [] });
  });
});
