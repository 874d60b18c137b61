// Semver ranges for replication's `tagSemver`, as npm reads them (>=1.2.0 <2, ^1.2, ~1.4, 1.x,
// 1.2.3 - 2, a || b), so a range copied from a package.json means the same here. Small on purpose:
// no loose mode, no coercion of partial tags such as `1.25` (those are moving tags, not versions).

export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  /** Dot-separated identifiers after `-`; empty for a release. */
  prerelease: readonly (string | number)[];
}

type Operator = '<' | '<=' | '>' | '>=' | '=';
interface Comparator {
  op: Operator;
  version: SemVer;
}
/** Comparators that must all hold; a range is a list of these, any one of which may hold. */
type ComparatorSet = readonly Comparator[];

export interface SemverRange {
  /** The range as written. */
  readonly text: string;
  test(version: SemVer): boolean;
}

const NUM = '0|[1-9]\\d*';
const PRE_ID = `(?:${NUM}|\\d*[A-Za-z-][0-9A-Za-z-]*)`;
const PRERELEASE = `${PRE_ID}(?:\\.${PRE_ID})*`;
const BUILD = '[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*';
// A tag cannot hold `+`, so build metadata comes after `_` as well (as Helm writes chart versions into tags).
const VERSION = new RegExp(`^v?(${NUM})\\.(${NUM})\\.(${NUM})(?:-(${PRERELEASE}))?(?:[+_]${BUILD})?$`);
const XR = `${NUM}|[xX*]`;
const PARTIAL = new RegExp(`^v?(${XR})(?:\\.(${XR})(?:\\.(${XR})(?:-(${PRERELEASE}))?(?:\\+${BUILD})?)?)?$`);
const PRIMITIVE = /^(<=|>=|<|>|=|~>|~|\^)?(.*)$/;

/** A tag or version text as a version (`v1.2.3`, `1.2.3-rc.1`, `1.2.3_build.5`); undefined when it is none. */
export function parseVersion(text: string): SemVer | undefined {
  const m = VERSION.exec(text);
  if (!m) return undefined;
  const [major, minor, patch] = [m[1], m[2], m[3]].map(Number) as [number, number, number];
  if (![major, minor, patch].every(Number.isSafeInteger)) return undefined;
  return { major, minor, patch, prerelease: parsePrerelease(m[4]) };
}

function parsePrerelease(text: string | undefined): (string | number)[] {
  if (text === undefined) return [];
  return text.split('.').map((id) => (/^\d+$/.test(id) ? Number(id) : id));
}

export function compareVersions(a: SemVer, b: SemVer): number {
  const main = a.major - b.major || a.minor - b.minor || a.patch - b.patch;
  if (main !== 0) return Math.sign(main);
  // A release sorts after every prerelease of its version.
  if (a.prerelease.length === 0 || b.prerelease.length === 0) return Math.sign(b.prerelease.length - a.prerelease.length);
  for (let i = 0; i < Math.max(a.prerelease.length, b.prerelease.length); i++) {
    const x = a.prerelease[i];
    const y = b.prerelease[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    // Numeric identifiers sort before alphanumeric ones.
    if (typeof x === 'number' && typeof y === 'number') return Math.sign(x - y);
    if (typeof x === 'number') return -1;
    if (typeof y === 'number') return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

export class SemverRangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SemverRangeError';
  }
}

/** Parses an npm-style range; throws SemverRangeError naming the part it could not read. */
export function parseRange(text: string): SemverRange {
  const sets = text.split('||').map((alternative) => parseAlternative(alternative.trim(), text));
  return { text, test: (version) => sets.some((set) => testSet(set, version)) };
}

function parseAlternative(text: string, whole: string): ComparatorSet {
  // npm reads an empty alternative as `*`; here it is more likely a slip (`^1 ||`), so `*` must be written.
  if (text === '') throw new SemverRangeError(`not a semver range: ${JSON.stringify(whole)} has an empty alternative (write * for every version)`);
  const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(text);
  if (hyphen) return [...lowerBound(partial(hyphen[1] as string, whole)), ...upperBoundInclusive(partial(hyphen[2] as string, whole))];
  // npm allows a space between an operator and its version (`>= 1.2.0`).
  const tokens = text.replace(/(<=|>=|<|>|=|~>|~|\^)\s+/g, '$1').split(/\s+/);
  return tokens.flatMap((token) => primitive(token, whole));
}

/** major.minor.patch where each may be a wildcard (undefined); a wildcard makes every later part one too. */
interface Partial {
  major: number | undefined;
  minor: number | undefined;
  patch: number | undefined;
  prerelease: (string | number)[];
}

/** `shown` is the token as written, operator included, for the error. */
function partial(token: string, whole: string, shown = token): Partial {
  const m = PARTIAL.exec(token);
  if (!m) throw new SemverRangeError(`not a semver range: cannot read ${JSON.stringify(shown)} in ${JSON.stringify(whole)}`);
  const part = (s: string | undefined) => (s === undefined || /^[xX*]$/.test(s) ? undefined : Number(s));
  const major = part(m[1]);
  const minor = major === undefined ? undefined : part(m[2]);
  const patch = minor === undefined ? undefined : part(m[3]);
  for (const n of [major, minor, patch]) {
    if (n !== undefined && !Number.isSafeInteger(n)) throw new SemverRangeError(`not a semver range: ${JSON.stringify(token)} has a number too large`);
  }
  return { major, minor, patch, prerelease: patch === undefined ? [] : parsePrerelease(m[4]) };
}

const v = (major: number, minor: number, patch: number, prerelease: (string | number)[] = []): SemVer => ({ major, minor, patch, prerelease });
/** The lowest version there is, `-0` included: `<X.Y.Z-0` keeps X.Y.Z's prereleases out. */
const floor = (major: number, minor: number, patch: number): SemVer => v(major, minor, patch, [0]);
const NOTHING: ComparatorSet = [{ op: '<', version: floor(0, 0, 0) }];

function primitive(token: string, whole: string): ComparatorSet {
  const [, op = '', rest = ''] = PRIMITIVE.exec(token) as RegExpExecArray;
  const p = partial(rest, whole, token);
  const { major: M, minor: m, patch: pa } = p;
  switch (op) {
    case '':
    case '=':
      if (M === undefined || m === undefined || pa === undefined) return [...lowerBound(p), ...upperBoundInclusive(p)];
      return [{ op: '=', version: v(M, m, pa, p.prerelease) }];
    case '~':
    case '~>':
      if (M === undefined) return [];
      return [...lowerBound(p), { op: '<', version: m === undefined ? floor(M + 1, 0, 0) : floor(M, m + 1, 0) }];
    case '^': {
      if (M === undefined) return [];
      let upper: SemVer;
      if (M > 0 || m === undefined) upper = floor(M + 1, 0, 0);
      else if (m > 0 || pa === undefined) upper = floor(0, m + 1, 0);
      else upper = floor(0, 0, pa + 1);
      return [...lowerBound(p), { op: '<', version: upper }];
    }
    case '>':
      if (M === undefined) return NOTHING;
      if (m === undefined) return [{ op: '>=', version: v(M + 1, 0, 0) }];
      if (pa === undefined) return [{ op: '>=', version: v(M, m + 1, 0) }];
      return [{ op: '>', version: v(M, m, pa, p.prerelease) }];
    case '>=':
      return lowerBound(p);
    case '<':
      if (M === undefined) return NOTHING;
      return [{ op: '<', version: pa === undefined ? floor(M, m ?? 0, 0) : v(M, m ?? 0, pa, p.prerelease) }];
    case '<=':
      return upperBoundInclusive(p);
    default:
      throw new SemverRangeError(`not a semver range: cannot read ${JSON.stringify(token)} in ${JSON.stringify(whole)}`);
  }
}

function lowerBound(p: Partial): ComparatorSet {
  if (p.major === undefined) return [];
  return [{ op: '>=', version: v(p.major, p.minor ?? 0, p.patch ?? 0, p.prerelease) }];
}

/** `<=` a partial: everything the partial covers. */
function upperBoundInclusive(p: Partial): ComparatorSet {
  const { major: M, minor: m, patch: pa } = p;
  if (M === undefined) return [];
  if (m === undefined) return [{ op: '<', version: floor(M + 1, 0, 0) }];
  if (pa === undefined) return [{ op: '<', version: floor(M, m + 1, 0) }];
  return [{ op: '<=', version: v(M, m, pa, p.prerelease) }];
}

function holds(c: Comparator, version: SemVer): boolean {
  const cmp = compareVersions(version, c.version);
  switch (c.op) {
    case '<':
      return cmp < 0;
    case '<=':
      return cmp <= 0;
    case '>':
      return cmp > 0;
    case '>=':
      return cmp >= 0;
    case '=':
      return cmp === 0;
  }
}

function testSet(set: ComparatorSet, version: SemVer): boolean {
  if (!set.every((c) => holds(c, version))) return false;
  if (version.prerelease.length === 0) return true;
  // As npm: a prerelease is only in range when a comparator of the set names a prerelease of the same
  // major.minor.patch, so `^1.2.0` never picks up 1.3.0-rc.1 while `>=1.3.0-rc.0 <2` does.
  return set.some(
    (c) => c.version.prerelease.length > 0 && c.version.major === version.major && c.version.minor === version.minor && c.version.patch === version.patch,
  );
}
