// The semver matcher behind tagSemver: tables of range × version, checked against what npm's semver
// answers for the same pair, and the ranges it refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareVersions, parseRange, parseVersion, SemverRangeError } from '../../server/registry/replication/semver.js';

function satisfies(version: string, range: string): boolean {
  const parsed = parseVersion(version);
  assert.ok(parsed, `${version} should parse`);
  return parseRange(range).test(parsed);
}

describe('semver versions', () => {
  it('reads tags that are versions, and only those', () => {
    assert.deepEqual(parseVersion('1.2.3'), { major: 1, minor: 2, patch: 3, prerelease: [] });
    assert.deepEqual(parseVersion('v1.2.3'), { major: 1, minor: 2, patch: 3, prerelease: [] });
    assert.deepEqual(parseVersion('1.2.3-rc.1'), { major: 1, minor: 2, patch: 3, prerelease: ['rc', 1] });
    assert.deepEqual(parseVersion('1.2.3_build.7'), { major: 1, minor: 2, patch: 3, prerelease: [] });
    assert.deepEqual(parseVersion('0.0.0-0.alpha-1'), { major: 0, minor: 0, patch: 0, prerelease: [0, 'alpha-1'] });
    for (const tag of [
      'latest',
      '1.2',
      '1',
      'v1.2',
      '01.2.3',
      '1.02.3',
      '1.2.3-',
      '1.2.3-01',
      '1.2.3.4',
      'V1.2.3',
      'x1.2.3',
      '1.2.3-rc..1',
      `${'9'.repeat(20)}.0.0`,
    ])
      assert.equal(parseVersion(tag), undefined, tag);
  });

  it('orders as semver does', () => {
    const order = [
      '1.0.0-0',
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '1.0.1',
      '1.1.0',
      '2.0.0',
    ];
    for (let i = 0; i < order.length - 1; i++) {
      const a = parseVersion(order[i] as string)!;
      const b = parseVersion(order[i + 1] as string)!;
      assert.equal(compareVersions(a, b), -1, `${order[i]} < ${order[i + 1]}`);
      assert.equal(compareVersions(b, a), 1, `${order[i + 1]} > ${order[i]}`);
    }
    assert.equal(compareVersions(parseVersion('v1.2.3')!, parseVersion('1.2.3_b1')!), 0);
  });
});

describe('semver ranges', () => {
  // [range, versions in it, versions not in it] — each pair as npm semver 7 answers it.
  const table: Array<[string, string[], string[]]> = [
    ['>=1.2.0 <2', ['1.2.0', '1.9.9', 'v1.5.0'], ['1.1.9', '2.0.0', '2.0.0-rc.1', '1.5.0-rc.1']],
    ['>= 1.2.0  < 2', ['1.2.0', '1.9.9'], ['2.0.0', '1.1.0']],
    ['^1.2', ['1.2.0', '1.99.0'], ['1.1.9', '2.0.0', '1.3.0-beta']],
    ['^1.2.3', ['1.2.3', '1.9.0'], ['1.2.2', '2.0.0', '2.0.0-0']],
    ['^0.2.3', ['0.2.3', '0.2.9'], ['0.3.0', '0.2.2']],
    ['^0.0.3', ['0.0.3'], ['0.0.4', '0.0.2']],
    ['^0.0', ['0.0.0', '0.0.9'], ['0.1.0']],
    ['^0', ['0.0.1', '0.9.9'], ['1.0.0']],
    ['^1.2.3-beta.2', ['1.2.3-beta.2', '1.2.3-beta.10', '1.2.3', '1.5.0'], ['1.2.3-beta.1', '1.2.4-beta.3', '2.0.0']],
    ['~1.4', ['1.4.0', '1.4.99'], ['1.5.0', '1.3.9']],
    ['~1.4.2', ['1.4.2', '1.4.7'], ['1.4.1', '1.5.0']],
    ['~1', ['1.0.0', '1.9.0'], ['2.0.0']],
    ['~>1.4.2', ['1.4.2'], ['1.5.0']],
    ['1.x', ['1.0.0', '1.99.99'], ['2.0.0', '0.9.0', '1.2.0-rc.1']],
    ['1.2.x', ['1.2.0', '1.2.9'], ['1.3.0']],
    ['1.2', ['1.2.0', '1.2.9'], ['1.3.0']],
    ['1', ['1.0.0', '1.5.5'], ['2.0.0']],
    ['*', ['0.0.0', '9.9.9'], ['1.0.0-rc.1']],
    ['x', ['1.2.3'], []],
    ['1.2.3', ['1.2.3', 'v1.2.3'], ['1.2.4', '1.2.3-rc.1']],
    ['=1.2.3', ['1.2.3'], ['1.2.4']],
    ['1.2.3-rc.1', ['1.2.3-rc.1'], ['1.2.3', '1.2.3-rc.2']],
    ['>1.2.3', ['1.2.4', '2.0.0'], ['1.2.3', '1.2.4-rc.1']],
    ['>1.2', ['1.3.0'], ['1.2.9']],
    ['>1', ['2.0.0'], ['1.9.9']],
    ['>*', [], ['0.0.0', '1.0.0']],
    ['<1.2', ['1.1.9'], ['1.2.0', '1.2.0-rc.1']],
    ['<1.2.3', ['1.2.2'], ['1.2.3', '1.2.3-rc.1']],
    ['<1.2.3-rc.2', ['1.2.3-rc.1', '1.2.2'], ['1.2.3-rc.2', '1.2.3']],
    ['<=1.2', ['1.2.9'], ['1.3.0']],
    ['<=1.2.3', ['1.2.3'], ['1.2.4']],
    ['1.2.3 - 2.3.4', ['1.2.3', '2.3.4'], ['1.2.2', '2.3.5']],
    ['1.2 - 2.3', ['1.2.0', '2.3.9'], ['1.1.9', '2.4.0']],
    ['1.2.3 - 2', ['2.9.9'], ['3.0.0']],
    ['^1.2 || ^3', ['1.5.0', '3.0.0'], ['2.0.0', '4.0.0']],
    ['<1.0.0 || >=2.0.0-rc.1 <2.1', ['0.9.0', '2.0.0-rc.1', '2.0.0-rc.2', '2.0.5'], ['1.0.0', '2.0.0-beta', '2.0.1-rc.1']],
    ['>=1.3.0-rc.0 <2', ['1.3.0-rc.0', '1.3.0-rc.5', '1.4.0'], ['1.4.0-rc.1']],
  ];
  for (const [range, inside, outside] of table) {
    it(`${range}`, () => {
      for (const version of inside) assert.equal(satisfies(version, range), true, `${version} should satisfy ${range}`);
      for (const version of outside) assert.equal(satisfies(version, range), false, `${version} should not satisfy ${range}`);
    });
  }

  it('refuses what it cannot read, naming the part', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /empty alternative/],
      ['^1 ||', /empty alternative/],
      ['1.2.3.4', /cannot read "1\.2\.3\.4"/],
      ['>=1.2.0 <two', /cannot read "<two"/],
      ['latest', /cannot read "latest"/],
      ['>=', /cannot read ">="/],
      ['1.2-rc.1', /cannot read "1\.2-rc\.1"/],
      ['=>1.2', /cannot read "=>1\.2"/],
      ['1.2.3 -', /cannot read "-"/],
      [`^${'9'.repeat(20)}`, /too large/],
    ];
    for (const [range, message] of bad) {
      assert.throws(
        () => parseRange(range),
        (err: unknown) => err instanceof SemverRangeError && message.test(err.message),
        range,
      );
    }
  });
});
