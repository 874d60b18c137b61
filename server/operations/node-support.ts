/**
 * The Node.js majors Berth supports: the ones .ci/run tests on, and package.json's `engines`. Node 20
 * is past its upstream end of life but stays supported while the pinned dependencies run on it (the
 * AWS SDK's releases after the first week of January 2027 need Node 22).
 */
export const SUPPORTED_NODE_MAJORS = [20, 22, 24] as const;

/** Supported majors the Node.js project no longer maintains: still tested, but say so at start-up. */
const END_OF_LIFE: Partial<Record<number, string>> = { 20: 'April 2026' };

const RECOMMENDED = 24;

function list(majors: readonly number[]): string {
  return `${majors.slice(0, -1).join(', ')} and ${majors[majors.length - 1]}`;
}

/** One line for the start-up log when `version` (process.version) is unsupported or past its end of life. */
export function nodeSupportNotice(version: string = process.version): string | undefined {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1]);
  const supported = `Berth supports Node.js ${list(SUPPORTED_NODE_MAJORS)}`;
  if (!(SUPPORTED_NODE_MAJORS as readonly number[]).includes(major)) return `Node.js ${version} is not supported: ${supported}; use ${RECOMMENDED} (LTS).`;
  const eol = END_OF_LIFE[major];
  if (eol !== undefined) return `Node.js ${major} reached its end of life in ${eol} and gets no security fixes; ${supported} — move to ${RECOMMENDED} (LTS).`;
  return undefined;
}
