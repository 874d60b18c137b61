// What a server process costs, read from /proc: CPU time (utime + stime) and resident memory.
// The client cannot inflate or hide these numbers, so they stay meaningful when the load generator
// itself is the bottleneck on a small machine.
import { readFileSync } from 'node:fs';

/** Kernel clock ticks per second (USER_HZ); 100 on every mainstream Linux architecture. */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) the process has used so far, children it waited for included. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14-17 of stat(5) are utime, stime, cutime, cstime; here they sit at offsets 11-14.
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
  return ticks / TICKS_PER_SECOND;
}

/** Resident memory in bytes: the total (VmRSS), anonymous pages (heap, buffers) and file-backed pages (mapped files such as lmdb's map). */
export interface RssParts {
  rss: number;
  anon: number;
  file: number;
}

export function rssParts(pid: number): RssParts {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  };
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  return rssParts(pid).rss;
}

/** Samples a process's RSS at a fixed interval until stopped; reports the largest value seen. */
export class RssSampler {
  private peak: RssParts = { rss: 0, anon: 0, file: 0 };
  private peakAnon = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 50,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    try {
      const now = rssParts(this.pid);
      if (now.rss > this.peak.rss) this.peak = now;
      this.peakAnon = Math.max(this.peakAnon, now.anon);
    } catch {
      // the process is gone; the peak so far stands
    }
  }

  stop(): number {
    return this.stopWithParts().rss;
  }

  /** The sample with the largest RSS, and the largest anonymous share seen in any sample. */
  stopWithParts(): RssParts & { peakAnon: number } {
    clearInterval(this.timer);
    this.sample();
    return { ...this.peak, peakAnon: this.peakAnon };
  }
}

/**
 * CPU used by `pids` and by the client while `work` runs, with its wall time. The client's share is
 * this process plus the children it reaped meanwhile (wrk runs as one), from its own /proc entry.
 */
export async function measure<T>(
  pids: number[],
  work: () => Promise<T>,
): Promise<{ result: T; wallSeconds: number; serverCpuSeconds: number; clientCpuSeconds: number }> {
  const before = pids.map(cpuSeconds);
  const client = cpuSeconds(process.pid);
  const start = process.hrtime.bigint();
  const result = await work();
  const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const serverCpuSeconds = pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - (before[i] ?? 0), 0);
  return { result, wallSeconds, serverCpuSeconds, clientCpuSeconds: cpuSeconds(process.pid) - client };
}
