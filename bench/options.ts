// Command-line options (`npm run bench -- --quick`), with environment fallbacks for CI.
import type { TargetId } from './targets.js';

export interface BenchOptions {
  quick: boolean;
  install: boolean;
  /** Runs of every workload on every target; the report shows the median. */
  repeat: number;
  /** Only workloads whose key contains one of these substrings (all when empty). */
  only: string[];
  targets: TargetId[];
  outDir: string;
  keepScratch: boolean;
  /** Run Berth under `node --cpu-prof`, writing .cpuprofile files here. */
  cpuProfDir?: string;
}

const ALL_TARGETS: TargetId[] = ['berth-fs', 'distribution', 'berth-s3'];

const USAGE = `usage: npm run bench -- [--quick] [--install] [--repeat N] [--only key,key] [--targets berth-fs,distribution,berth-s3] [--out DIR] [--keep]
  --quick    small sizes and short durations (a smoke run, under two minutes)
  --install  apt-get install docker-registry and wrk when they are missing
  --repeat   run every workload N times per target (alternating) and report the median (default 1)
  --only     run only workloads whose key contains one of these substrings (e.g. push-,pull-; mixed-64: 60 s of a weighted mix of reads and a few pushes at 64 connections, peak RSS; gc: the GC race soak and the 100,000-blob mark pass; retention: the 30,000-tag preview; api-list: the management API's repository list of 10,000 repositories and tag pages of a 30,000-tag repository, auth on, embedded and Redis; scale: tags/list of a 100,000-tag repository and the catalog of 10,000 repositories (embedded and Redis), manifest GET by tag in a Redis store of 1,000,000 tags; events: small-image pushes with events off, on, and a fast, slow and down webhook endpoint; fanout-s3: 200 clients pulling one image from Berth on S3 + Redis, 2 processes, shared reads on and off, and from distribution on S3, S3 GETs per blob counted; fanout-cold: the same 200 clients through a pull-through cache with an empty cache (Berth on S3 + Redis, 2 processes, and distribution with proxy.remoteurl), upstream GETs per blob counted; fanout alone also runs the shared-target fanout-N row)
  --targets  which setups to run (default: all; distribution only where /usr/bin/docker-registry exists)
  --out      where results go (default .bench-results)
  --keep     keep the scratch directory (registry data and logs)
  --cpu-prof DIR  run Berth under node --cpu-prof and write its profiles to DIR (for finding hot spots)
environment: BENCH_QUICK=1, BENCH_REPEAT=N, BENCH_ONLY=..., BENCH_TARGETS=...`;

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const options: BenchOptions = {
    quick: env.BENCH_QUICK === '1',
    install: false,
    repeat: Number(env.BENCH_REPEAT ?? 1),
    only: (env.BENCH_ONLY ?? '').split(',').filter(Boolean),
    targets: (env.BENCH_TARGETS ? env.BENCH_TARGETS.split(',') : ALL_TARGETS) as TargetId[],
    outDir: '.bench-results',
    keepScratch: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    switch (arg) {
      case '--quick':
        options.quick = true;
        break;
      case '--install':
        options.install = true;
        break;
      case '--repeat':
        options.repeat = Number(value());
        break;
      case '--only':
        options.only = value().split(',').filter(Boolean);
        break;
      case '--targets':
        options.targets = value().split(',').filter(Boolean) as TargetId[];
        break;
      case '--out':
        options.outDir = value();
        break;
      case '--cpu-prof':
        options.cpuProfDir = value();
        break;
      case '--keep':
        options.keepScratch = true;
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${arg}\n${USAGE}`);
    }
  }
  if (!Number.isInteger(options.repeat) || options.repeat < 1 || options.repeat > 10) throw new Error('--repeat must be an integer from 1 to 10');
  for (const t of options.targets) if (!ALL_TARGETS.includes(t)) throw new Error(`unknown target ${t}; choose from ${ALL_TARGETS.join(', ')}`);
  return options;
}
