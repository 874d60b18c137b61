// A registry's day rather than one request type: for a fixed time, 60 connections each pick the next
// read from a weighted mix (manifest GET/HEAD by tag and digest, blob HEADs, 4 KiB and 1–8 MiB blob
// GETs, tags/list) and 4 more push (manifest PUTs with a new tag, 1–64 KiB blobs), while the server's
// RSS is sampled every 50 ms. The question it answers is memory under realistic concurrency, so the client is the lean Node
// one (wrk 4.1.0 cannot send HEADs, and a push is two dependent requests); its CPU is reported.
import type { Agent } from 'node:http';
import { makeBlob, OCI_MANIFEST, type SyntheticBlob } from './blobs.js';
import { newAgent, pushBlob, send } from './client.js';
import { REPO, type Fixtures } from './fixtures.js';
import { measure, RssSampler } from './proc.js';
import type { Target, TargetId } from './targets.js';
import { ACCEPT, MiB, percentile, type Measurement, type Workload } from './workloads.js';

export const MIXED_REPO = 'bench/mixed';
const LARGE_SIZES = [1 * MiB, 2 * MiB, 4 * MiB, 8 * MiB];

interface MixContext {
  agent: Agent;
  base: string;
  fixtures: Fixtures;
  large: SyntheticBlob[];
  /** Unique per run: manifest PUTs create tags, never rewrite them. */
  tagPrefix: string;
  random: () => number;
}

/** One request kind of the mix (a push, POST then PUT, counts as one): resolves to the bytes received, or throws on an unexpected answer. */
interface Op {
  name: string;
  weight: number;
  run(c: MixContext): Promise<number>;
}

async function expectStatus(reply: Promise<{ status: number; bytes: number }>, status: number, what: string): Promise<number> {
  const r = await reply;
  if (r.status !== status) throw new Error(`${what}: HTTP ${r.status}`);
  return r.bytes;
}

let putCounter = 0;

/** The readers' mix, weights per 100 requests, as pulls by docker and containerd spread them. */
const READS: Op[] = [
  {
    name: 'GET manifest by tag',
    weight: 18,
    run: (c) => expectStatus(send(c.agent, 'GET', `${c.base}/v2/${REPO.small}/manifests/v1`, ACCEPT), 200, 'GET manifest tag'),
  },
  {
    name: 'GET manifest by digest',
    weight: 14,
    run: (c) =>
      expectStatus(send(c.agent, 'GET', `${c.base}/v2/${REPO.small}/manifests/${c.fixtures.smallManifest.digest}`, ACCEPT), 200, 'GET manifest digest'),
  },
  {
    name: 'HEAD manifest by tag',
    weight: 12,
    run: (c) => expectStatus(send(c.agent, 'HEAD', `${c.base}/v2/${REPO.small}/manifests/v1`, ACCEPT), 200, 'HEAD manifest tag'),
  },
  {
    name: 'HEAD manifest by digest',
    weight: 6,
    run: (c) =>
      expectStatus(send(c.agent, 'HEAD', `${c.base}/v2/${REPO.small}/manifests/${c.fixtures.smallManifest.digest}`, ACCEPT), 200, 'HEAD manifest digest'),
  },
  {
    name: 'HEAD blob',
    weight: 16,
    run: (c) => expectStatus(send(c.agent, 'HEAD', `${c.base}/v2/${REPO.small}/blobs/${c.fixtures.smallLayer.digest}`, {}), 200, 'HEAD blob'),
  },
  {
    name: 'GET blob 4 KiB',
    weight: 14,
    run: (c) => expectStatus(send(c.agent, 'GET', `${c.base}/v2/${REPO.small}/blobs/${c.fixtures.smallLayer.digest}`, {}), 200, 'GET small blob'),
  },
  {
    name: 'GET blob 1–8 MiB',
    weight: 6,
    run: async (c) => {
      const blob = c.large[Math.floor(c.random() * c.large.length)] as SyntheticBlob;
      const r = await send(c.agent, 'GET', `${c.base}/v2/${MIXED_REPO}/blobs/${blob.digest}`, {});
      if (r.status !== 200 || r.bytes !== blob.size) throw new Error(`GET large blob: HTTP ${r.status}, ${r.bytes} of ${blob.size} bytes`);
      return r.bytes;
    },
  },
  { name: 'GET tags/list', weight: 6, run: (c) => expectStatus(send(c.agent, 'GET', `${c.base}/v2/${REPO.tags}/tags/list`, {}), 200, 'tags/list') },
];

/** The writers' mix: half manifest PUTs (a new tag each), half small blob pushes. */
const WRITES: Op[] = [
  {
    name: 'PUT manifest',
    weight: 1,
    run: (c) => {
      const m = c.fixtures.putManifest;
      const url = `${c.base}/v2/${REPO.put}/manifests/${c.tagPrefix}${(putCounter++).toString(36)}`;
      return expectStatus(
        send(c.agent, 'PUT', url, { 'Content-Type': OCI_MANIFEST, 'Content-Length': m.size }, async (req) => void req.write(m.data)),
        201,
        'PUT manifest',
      );
    },
  },
  {
    name: 'push small blob',
    weight: 1,
    run: async (c) => {
      // Fresh bytes each time, 1–64 KiB: a config or a small layer.
      await pushBlob(c.agent, c.base, MIXED_REPO, makeBlob(1024 * (1 + Math.floor(c.random() * 64))), 'monolithic', 0);
      return 0;
    },
  },
];

function pick(ops: Op[], r: number): Op {
  let left = r * ops.reduce((sum, op) => sum + op.weight, 0);
  for (const op of ops) {
    left -= op.weight;
    if (left < 0) return op;
  }
  return ops[ops.length - 1] as Op;
}

/**
 * Connections that only push. Separate from the readers so that a slow fsync (a busy disk) holds up
 * its writer and not a reader's pulls: the read load stays the same whatever the disk does.
 */
const WRITERS = 4;

/** A small deterministic generator (mulberry32), so every target sees the same sequence of requests. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function mixedWorkload(connections: number, durationSeconds: number): Workload {
  const largeByTarget = new Map<TargetId, SyntheticBlob[]>();
  return {
    key: `mixed-${connections}`,
    title: `mixed load ${durationSeconds} s, c=${connections} (manifests, blob HEAD/GET 4 KiB–8 MiB, tags/list, pushes), peak RSS`,
    group: 'mixed',
    unit: 'req/s',
    async run(target: Target, ctx): Promise<Measurement> {
      let large = largeByTarget.get(target.id);
      if (!large) {
        large = LARGE_SIZES.map((size) => makeBlob(size));
        for (const blob of large) await pushBlob(ctx.agent, target.url, MIXED_REPO, blob, 'monolithic', 0);
        largeByTarget.set(target.id, large);
      }
      const agent = newAgent();
      const durations: number[] = [];
      let bytes = 0;
      let errors = 0;
      let firstError: string | undefined;
      const deadline = process.hrtime.bigint() + BigInt(durationSeconds * 1e9);
      const tagPrefix = `mx${ctx.repeat}r${Date.now().toString(36)}-`;
      const worker = async (index: number) => {
        const c: MixContext = { agent, base: target.url, fixtures: ctx.fixtures, large: large, tagPrefix, random: seeded(index + 1) };
        const ops = index < WRITERS ? WRITES : READS;
        while (process.hrtime.bigint() < deadline) {
          const op = pick(ops, c.random());
          const start = process.hrtime.bigint();
          try {
            // Not `bytes += await …`: that reads `bytes` before the await and loses the other workers' sums.
            const got = await op.run(c);
            bytes += got;
          } catch (err) {
            errors++;
            firstError ??= `${op.name}: ${(err as Error).message}`;
          }
          durations.push(Number(process.hrtime.bigint() - start) / 1e6);
        }
      };
      const rss = new RssSampler(target.pid);
      try {
        const m = await measure([target.pid], () => Promise.all(Array.from({ length: connections }, (_, i) => worker(i))));
        const peak = rss.stopWithParts();
        durations.sort((a, b) => a - b);
        if (firstError) process.stderr.write(`[bench] mixed on ${target.id}: ${errors} errors, first: ${firstError}\n`);
        return {
          value: durations.length / m.wallSeconds,
          wallSeconds: m.wallSeconds,
          serverCpuSeconds: m.serverCpuSeconds,
          clientCpuSeconds: m.clientCpuSeconds,
          bytes,
          requests: durations.length,
          p50Ms: percentile(durations, 50),
          p99Ms: percentile(durations, 99),
          peakRssBytes: peak.rss,
          peakRssAnonBytes: peak.anon,
          peakRssFileBytes: peak.file,
          errors,
        };
      } finally {
        rss.stop();
        agent.destroy();
      }
    },
  };
}
