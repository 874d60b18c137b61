// The point in time a replay starts from. One grammar, so "2h" or "2026-12-02T10:00Z" mean the same
// to `berth events replay --since` and (absolute times only) to POST …/replay:
//   relative  <N>s | <N>m | <N>h | <N>d        N a whole number ≥ 1: that long before now
//   absolute  YYYY-MM-DD                        midnight UTC
//             YYYY-MM-DDTHH:MM[:SS[.fff]]<zone> zone Z or ±HH:MM (a time without one is refused:
//                                               whose local time it means would be a guess)

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const RELATIVE = /^(\d{1,9})([smhd])$/;
const ABSOLUTE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

export const ABSOLUTE_GRAMMAR = 'an ISO-8601 time with a zone (2026-12-02T10:00:00Z, 2026-12-02T11:00+01:00) or a date (2026-12-02, midnight UTC)';
export const TIME_GRAMMAR = `${ABSOLUTE_GRAMMAR}, or a time ago: a whole number and s, m, h or d (30m, 2h, 1d)`;

/** A time the grammar does not take, or one that would skip events instead of replaying them. */
export class ReplayTimeError extends Error {}

function absolute(text: string): number | undefined {
  const m = ABSOLUTE.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h = '00', mi = '00', s = '00'] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [number, number, number, number, number, number];
  // Date.parse rolls 2026-02-30 over into March; a typo must not replay from the wrong day.
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) return undefined;
  const ms = Date.parse(m[4] === undefined ? `${text}T00:00:00Z` : text);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The time `text` names, in ms since epoch; `relative` also takes `2h`-style times. */
export function parseReplayTime(text: string, now: number, options: { relative: boolean }): number {
  const rel = options.relative ? RELATIVE.exec(text) : null;
  let time: number | undefined;
  if (rel) {
    const n = Number(rel[1]);
    if (n < 1) throw new ReplayTimeError(`a time ago must be at least 1${rel[2]}, got ${JSON.stringify(text)}`);
    time = now - n * UNIT_MS[rel[2] as keyof typeof UNIT_MS];
  } else time = absolute(text);
  if (time === undefined)
    throw new ReplayTimeError(`${JSON.stringify(text.slice(0, 80))} is not a time: give ${options.relative ? TIME_GRAMMAR : ABSOLUTE_GRAMMAR}`);
  // A cursor moved to the future would pass over every record not yet delivered.
  if (time > now) throw new ReplayTimeError(`${text} is in the future: a replay starts from a time already past`);
  return time;
}
