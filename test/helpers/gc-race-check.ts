// What the race harness checks once the pushers have stopped and GC has gone quiet: the registry holds
// exactly the model (every tag and manifest resolves, every reference GETs 200 with its digest,
// what was deleted is gone) and storage holds nothing else (every blob under blobs/ is a live
// manifest or referenced by one: each orphan is gone).
import { blobKey, BLOBS_ROOT, parseBlobKey } from '../../server/registry/keys.js';
import { parseDigest } from '../../server/registry/references.js';
import { BlobNotFoundError } from '../../storage-drivers/blob/types.js';
import type { RaceCluster } from './gc-race-cluster.js';
import type { RepoModel } from './gc-race-pushers.js';
import { MANIFEST_ACCEPT } from './gc-race-client.js';
import { sha256 } from './oci.js';

export interface RaceFindings {
  /** A tag, manifest or reference that does not resolve to the right bytes. */
  dangling: string[];
  /** Blobs in storage that no live manifest is or references. */
  orphans: string[];
  /** The registry disagrees with the model otherwise (a tag list, a deleted manifest still served). */
  mismatches: string[];
  liveManifests: number;
  /** Distinct digests the live manifests are or reference. */
  liveDigests: number;
  storedBlobs: number;
  storedBytes: number;
}

export interface QuietGc {
  waitedMs: number;
  /** Items due within the horizon when the pushers stopped: the backlog the passes had to clear. */
  dueAtStart: number;
  /** Work still queued for later than the horizon (deferred behind a pin, say), as "digest in N s". */
  later: string[];
}

/**
 * Polls until no queued GC work falls due within `horizonMs` of now (the delay plus the quarantine:
 * what an orphan may still wait for), or throws at the deadline with what is left.
 */
export async function waitForQuietGc(cluster: RaceCluster, horizonMs: number, timeoutMs: number): Promise<QuietGc> {
  const started = Date.now();
  const gc = cluster.stack.metadata.gc;
  let dueAtStart: number | undefined;
  for (;;) {
    const now = Date.now();
    const { due } = await gc.queueSize(now + horizonMs);
    dueAtStart ??= due;
    if (due === 0) {
      const later = await gc.takeDue(now + 365 * 86_400_000, 20);
      return {
        waitedMs: now - started,
        dueAtStart,
        later: later.map((w) => `${w.kind === 'blob' ? w.digest : `${w.repo}@${w.digest}`} in ${Math.round((w.due - now) / 1000)} s`),
      };
    }
    if (now - started > timeoutMs) {
      const left = await gc.takeDue(now + horizonMs, 10);
      throw new Error(`GC still had ${due} item(s) due ${timeoutMs} ms after the pushers stopped: ${JSON.stringify(left)}\n${cluster.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function getDigest(url: string, headers: Record<string, string> = {}): Promise<{ status: number; digest?: string; header?: string | null }> {
  const res = await fetch(url, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  return res.status === 200 ? { status: 200, digest: sha256(body), header: res.headers.get('docker-content-digest') } : { status: res.status };
}

async function stored(cluster: RaceCluster, digest: string): Promise<boolean> {
  try {
    await cluster.stack.driver.stat(blobKey(parseDigest(digest)));
    return true;
  } catch (err) {
    if (err instanceof BlobNotFoundError) return false;
    throw err;
  }
}

/** What storage and metadata say about a digest that did not resolve, for the failure message. */
async function explain(cluster: RaceCluster, repo: string, digest: string): Promise<string> {
  const { metadata } = cluster.stack;
  const link = await metadata.getCheckedBlobLink(repo, digest);
  const status = await metadata.gc.status(digest);
  const holders = await metadata.blobRepositories(digest, 10);
  return `stored ${await stored(cluster, digest)}, link ${JSON.stringify(link ?? null)}, GC ${JSON.stringify(status)}, holders ${JSON.stringify(holders)}`;
}

export async function checkRace(cluster: RaceCluster, repos: RepoModel[]): Promise<RaceFindings> {
  const findings: RaceFindings = { dangling: [], orphans: [], mismatches: [], liveManifests: 0, liveDigests: 0, storedBlobs: 0, storedBytes: 0 };
  const live = new Set<string>();
  // Reads alternate between the processes too: both must see the same registry.
  let turn = 0;
  const base = () => cluster.urls[turn++ % cluster.urls.length] as string;
  const manifestHeaders = { Accept: MANIFEST_ACCEPT };

  for (const repo of repos) {
    const tagsRes = await fetch(`${base()}/v2/${repo.name}/tags/list`);
    if (tagsRes.status === 200) {
      const listed = ((await tagsRes.json()) as { tags?: string[] | null }).tags ?? [];
      const expected = [...repo.tags.keys()].sort();
      if (JSON.stringify([...listed].sort()) !== JSON.stringify(expected)) {
        findings.mismatches.push(`${repo.name}: tags ${JSON.stringify(listed)}, expected ${JSON.stringify(expected)}`);
      }
    } else {
      await tagsRes.arrayBuffer();
      if (repo.pushed.size > 0) findings.mismatches.push(`${repo.name}: tags/list answered ${tagsRes.status}`);
    }
    for (const [tag, digest] of repo.tags) {
      const got = await getDigest(`${base()}/v2/${repo.name}/manifests/${tag}`, manifestHeaders);
      if (got.status !== 200 || got.digest !== digest) findings.dangling.push(`${repo.name}:${tag} → ${got.status} ${got.digest ?? ''}, expected ${digest}`);
    }
    for (const [digest, entry] of repo.live) {
      findings.liveManifests++;
      live.add(digest);
      const got = await getDigest(`${base()}/v2/${repo.name}/manifests/${digest}`, manifestHeaders);
      if (got.status !== 200 || got.digest !== digest) findings.dangling.push(`${repo.name}@${digest} → ${got.status}`);
      // Served from the metadata copy or not, a live manifest's own bytes stay in storage (a rebuild reads them).
      if (!(await stored(cluster, digest))) findings.dangling.push(`${repo.name}@${digest}: its bytes are gone from storage`);
      if (entry.kind === 'index') {
        for (const child of entry.children) {
          const c = await getDigest(`${base()}/v2/${repo.name}/manifests/${child.manifest.digest}`, manifestHeaders);
          if (c.status !== 200 || c.digest !== child.manifest.digest)
            findings.dangling.push(`${repo.name}@${digest} child ${child.manifest.digest} → ${c.status}`);
        }
        continue;
      }
      for (const b of [entry.image.config, ...entry.image.layers]) {
        live.add(b.digest);
        const got = await getDigest(`${base()}/v2/${repo.name}/blobs/${b.digest}`);
        if (got.status !== 200 || got.digest !== b.digest) {
          findings.dangling.push(`${repo.name}@${digest} references ${b.digest} → ${got.status}; ${await explain(cluster, repo.name, b.digest)}`);
        }
      }
    }
    for (const digest of repo.pushed) {
      if (repo.live.has(digest)) continue;
      const got = await getDigest(`${base()}/v2/${repo.name}/manifests/${digest}`, manifestHeaders);
      if (got.status !== 404) findings.mismatches.push(`${repo.name}@${digest} was deleted (or its subject was) but answers ${got.status}`);
    }
    const subjects = new Set([...repo.live.values()].flatMap((m) => (m.kind === 'referrer' ? [m.subject] : [])));
    for (const subject of subjects) {
      const res = await fetch(`${base()}/v2/${repo.name}/referrers/${subject}`);
      const listed = res.status === 200 ? ((await res.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest).sort() : [];
      const expected = [...repo.live.entries()].filter(([, m]) => m.kind === 'referrer' && m.subject === subject).map(([d]) => d);
      if (JSON.stringify(listed) !== JSON.stringify(expected.sort()))
        findings.mismatches.push(`${repo.name}: referrers of ${subject} ${JSON.stringify(listed)}`);
    }
  }
  findings.liveDigests = live.size;

  for await (const key of cluster.stack.driver.list(BLOBS_ROOT)) {
    const parsed = parseBlobKey(key);
    if (!parsed) continue;
    const digest = `${parsed.algorithm}:${parsed.hex}`;
    const { size } = await cluster.stack.driver.stat(key);
    findings.storedBlobs++;
    findings.storedBytes += size;
    if (!live.has(digest)) findings.orphans.push(`${digest} (${size} bytes, GC state ${JSON.stringify(await cluster.stack.metadata.gc.status(digest))})`);
  }
  return findings;
}
