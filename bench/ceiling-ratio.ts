// Each row read against the machine's own limit for that kind of work, beside its ratio to
// distribution: a trivial Node server for request rates, one durable sequential write stream for
// pushes, a trivial server sending from memory over loopback for pulls. A ratio near 1 says the
// machine, not Berth, sets the pace; distribution's number cannot say that.
import type { Ceilings } from './ceilings.js';
import type { Row } from './report.js';

export interface CeilingRatio {
  /** Berth fs's value over the ceiling's. */
  ratio: number;
  /** Which ceiling, in a few words. */
  against: 'trivial HTTP' | 'write+fsync' | 'loopback send';
}

export function ceilingRatio(row: Pick<Row, 'group' | 'key' | 'results'>, c: Ceilings | undefined): CeilingRatio | undefined {
  const fs = row.results['berth-fs']?.median;
  if (!c || !fs) return undefined;
  const pick = (): { value: number; against: CeilingRatio['against'] } | undefined => {
    switch (row.group) {
      case 'requests':
        return { value: c.trivialHttp.requestsPerSecond, against: 'trivial HTTP' };
      case 'push':
        return { value: c.durableWriteMBps, against: 'write+fsync' };
      case 'pull':
      case 'fanout':
        return { value: c.trivialPull.MBps, against: 'loopback send' };
      case 'big':
        return row.key.startsWith('big-push') ? { value: c.durableWriteMBps, against: 'write+fsync' } : { value: c.trivialPull.MBps, against: 'loopback send' };
      default:
        return undefined;
    }
  };
  const ceiling = pick();
  if (!ceiling || ceiling.value <= 0) return undefined;
  return { ratio: fs.value / ceiling.value, against: ceiling.against };
}
