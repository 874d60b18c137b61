// Issue 2, item 5: SIGKILL the real server during concurrent pushes, restart it on the same data
// directory, and check that everything acknowledged survived and nothing partial became visible.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { blob, imageManifest, OCI_MANIFEST, sha256, type Blob } from '../helpers/oci.js';
import { startBerthProcess, type BerthProcess } from '../helpers/berth-process.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

const WORKERS = 6;
const CHUNK = 256 * 1024;

interface AckedBlob {
  repo: string;
  blob: Blob;
}

interface AckedManifest {
  repo: string;
  tag: string;
  manifest: Blob;
}

/** An upload whose session the client knows: parked between chunks, or cut off mid-request by the kill. */
interface OpenUpload {
  repo: string;
  location: string;
  blob: Blob;
  parked: boolean;
}

/** What the clients were told, across every round. */
class Ledger {
  readonly blobs: AckedBlob[] = [];
  readonly manifests: AckedManifest[] = [];
  /** Pushes that got no answer: each may or may not have landed, but never partially. */
  readonly unackedBlobs: AckedBlob[] = [];
  readonly unackedManifests: AckedManifest[] = [];
  readonly open: OpenUpload[] = [];
  /** Tags several clients move at once: every manifest ever sent to each, and whether any PUT was acknowledged. */
  readonly contended = new Map<string, { repo: string; tag: string; candidates: Map<string, Blob>; acked: boolean }>();
}

/** Stops every worker the moment the server dies, and tells apart errors the kill caused. */
class Round {
  private acks = 0;
  private manifestPuts = 0;
  killed = false;
  readonly problems: string[] = [];

  constructor(
    private readonly server: BerthProcess,
    private readonly killAt: { acks?: number; manifestPut?: number },
  ) {}

  ack(): void {
    this.acks++;
    if (this.killAt.acks !== undefined && this.acks >= this.killAt.acks) this.kill();
  }

  /** Called just after a manifest PUT went out, before its answer. */
  sentManifest(): void {
    this.manifestPuts++;
    if (this.killAt.manifestPut !== undefined && this.manifestPuts >= this.killAt.manifestPut) this.kill();
  }

  kill(): void {
    if (this.killed) return;
    this.killed = true;
    this.server.child.kill('SIGKILL');
  }

  /** A failure before the kill is a real bug; after it, an expected casualty. */
  failed(what: string, detail: string): void {
    if (!this.killed) this.problems.push(`${what}: ${detail}`);
  }
}

async function send(base: string, path: string, init: RequestInit): Promise<Response> {
  return fetch(new URL(path, base), init);
}

function nextOffset(range: string | null): number {
  const m = /^0-(\d+)$/.exec(range ?? '');
  assert.ok(m, `bad Range header ${range}`);
  const last = Number(m[1]);
  // `0-0` means "nothing yet" for a fresh session; every chunk here is far longer than one byte.
  return last === 0 ? 0 : last + 1;
}

/** Pushes one blob, monolithic or in chunks; returns true once acknowledged (201). */
async function pushBlob(base: string, round: Round, ledger: Ledger, repo: string, b: Blob, chunked: boolean): Promise<boolean> {
  const what = `${chunked ? 'chunked' : 'monolithic'} push of ${b.digest.slice(0, 19)} to ${repo}`;
  let location: string | undefined;
  try {
    if (!chunked) {
      const res = await send(base, `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
        method: 'POST',
        body: b.data,
        headers: { 'Content-Type': 'application/octet-stream' },
      });
      if (res.status !== 201) throw new Error(`status ${res.status} ${await res.text()}`);
    } else {
      const post = await send(base, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      if (post.status !== 202) throw new Error(`POST status ${post.status}`);
      location = post.headers.get('location') as string;
      for (let off = 0; off < b.size; off += CHUNK) {
        const part = b.data.subarray(off, Math.min(off + CHUNK, b.size));
        const res = await send(base, location, {
          method: 'PATCH',
          body: part,
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${off}-${off + part.length - 1}` },
        });
        if (res.status !== 202) throw new Error(`PATCH status ${res.status} ${await res.text()}`);
        location = res.headers.get('location') as string;
      }
      const put = await send(base, `${location}?digest=${b.digest}`, { method: 'PUT' });
      if (put.status !== 201) throw new Error(`PUT status ${put.status} ${await put.text()}`);
    }
  } catch (err) {
    round.failed(what, (err as Error).message);
    ledger.unackedBlobs.push({ repo, blob: b });
    if (location) ledger.open.push({ repo, location, blob: b, parked: false });
    return false;
  }
  ledger.blobs.push({ repo, blob: b });
  round.ack();
  return true;
}

async function pushManifest(base: string, round: Round, ledger: Ledger, repo: string, tag: string, m: Blob): Promise<boolean> {
  try {
    const pending = send(base, `/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: m.data, headers: { 'Content-Type': OCI_MANIFEST } });
    round.sentManifest();
    const res = await pending;
    if (res.status !== 201) throw new Error(`status ${res.status} ${await res.text()}`);
  } catch (err) {
    round.failed(`manifest ${repo}:${tag}`, (err as Error).message);
    ledger.unackedManifests.push({ repo, tag, manifest: m });
    return false;
  }
  ledger.manifests.push({ repo, tag, manifest: m });
  round.ack();
  return true;
}

/** Moves a tag that other clients move too (multi-tag PUT by digest); true once acknowledged. */
async function moveContendedTag(base: string, round: Round, ledger: Ledger, repo: string, tag: string, m: Blob): Promise<boolean> {
  const key = `${repo}:${tag}`;
  const entry = ledger.contended.get(key) ?? { repo, tag, candidates: new Map<string, Blob>(), acked: false };
  ledger.contended.set(key, entry);
  entry.candidates.set(m.digest, m);
  try {
    const res = await send(base, `/v2/${repo}/manifests/${m.digest}?tag=${tag}`, { method: 'PUT', body: m.data, headers: { 'Content-Type': OCI_MANIFEST } });
    if (res.status !== 201) throw new Error(`status ${res.status} ${await res.text()}`);
    assert.equal(res.headers.get('oci-tag'), tag);
  } catch (err) {
    round.failed(`moving ${key}`, (err as Error).message);
    return false;
  }
  entry.acked = true;
  round.ack();
  return true;
}

/** One client: images of a shared base layer plus its own layers, until the server dies. */
async function worker(base: string, round: Round, ledger: Ledger, label: string, id: number, shared: Blob): Promise<void> {
  // Two clients per repository, so that they race for the same tag.
  const repo = `crash/w${id % (WORKERS / 2)}`;
  for (let n = 0; !round.killed && n < 1000; n++) {
    const config = blob(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(8).toString('hex') }),
    );
    const own = blob(randomBytes(50_000 + ((id * 7919 + n * 104_729) % 700_000)));
    const layers = [shared, own];
    let ok = true;
    for (const [i, b] of [config, ...layers].entries()) {
      if (!ok || round.killed) break;
      ok = await pushBlob(base, round, ledger, repo, b, (i + n + id) % 2 === 1);
    }
    if (!ok || round.killed) return;
    const m = imageManifest(config, layers);
    if (!(await pushManifest(base, round, ledger, repo, `${label}-${id}-${n}`, m)) || round.killed) return;
    await moveContendedTag(base, round, ledger, repo, `${label}-latest`, m);
  }
}

/** Starts a chunked upload and stops after its first chunk, so it is open when the kill comes. */
async function park(base: string, ledger: Ledger, repo: string): Promise<void> {
  const b = blob(randomBytes(3 * CHUNK + 123));
  const post = await send(base, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202);
  const res = await send(base, post.headers.get('location') as string, {
    method: 'PATCH',
    body: b.data.subarray(0, CHUNK),
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${CHUNK - 1}` },
  });
  assert.equal(res.status, 202, await res.text());
  ledger.open.push({ repo, location: res.headers.get('location') as string, blob: b, parked: true });
}

async function checkAcknowledged(base: string, ledger: Ledger): Promise<void> {
  for (const { repo, blob: b } of ledger.blobs) {
    const res = await send(base, `/v2/${repo}/blobs/${b.digest}`, {});
    assert.equal(res.status, 200, `acknowledged blob ${b.digest} in ${repo} answers ${res.status}`);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), b.digest, `acknowledged blob ${b.digest} in ${repo} has other bytes`);
  }
  for (const { repo, tag, manifest } of ledger.manifests) {
    for (const ref of [tag, manifest.digest]) {
      const res = await send(base, `/v2/${repo}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(res.status, 200, `acknowledged manifest ${repo}:${ref} answers ${res.status}`);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), manifest.data, `acknowledged manifest ${repo}:${ref} has other bytes`);
      assert.equal(res.headers.get('docker-content-digest'), manifest.digest);
    }
  }
}

/** A tag several clients moved names one of the manifests sent to it, whole, with its blobs. */
async function checkContendedTags(base: string, ledger: Ledger): Promise<void> {
  for (const { repo, tag, candidates, acked } of ledger.contended.values()) {
    const res = await send(base, `/v2/${repo}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
    const body = Buffer.from(await res.arrayBuffer());
    if (!acked && res.status === 404) continue;
    assert.equal(res.status, 200, `${repo}:${tag} (acknowledged: ${acked}) answers ${res.status}`);
    const digest = res.headers.get('docker-content-digest') as string;
    const expected = candidates.get(digest);
    assert.ok(expected, `${repo}:${tag} points at ${digest}, never sent to it`);
    assert.deepEqual(body, expected.data);
  }
}

/** Unacknowledged pushes either landed whole or are absent; nothing half-written is ever served. */
async function checkNothingPartial(base: string, ledger: Ledger): Promise<void> {
  for (const { repo, blob: b } of ledger.unackedBlobs) {
    const head = await send(base, `/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' });
    assert.ok(head.status === 404 || head.status === 200, `HEAD of unacknowledged ${b.digest}: ${head.status}`);
    const res = await send(base, `/v2/${repo}/blobs/${b.digest}`, {});
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status === 200) {
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(b.size));
      assert.equal(sha256(body), b.digest, `unacknowledged blob ${b.digest} is served with other bytes`);
    } else {
      assert.equal(res.status, 404, `GET of unacknowledged ${b.digest}: ${res.status}`);
    }
  }
  for (const { repo, tag, manifest } of ledger.unackedManifests) {
    const res = await send(base, `/v2/${repo}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status === 200) assert.deepEqual(body, manifest.data, `unacknowledged ${repo}:${tag} is served with other bytes`);
    else assert.equal(res.status, 404, `GET of unacknowledged ${repo}:${tag}: ${res.status}`);
    // Whatever it references must be readable whenever the manifest is.
    if (res.status === 200) {
      const json = JSON.parse(body.toString('utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> };
      for (const d of [json.config.digest, ...json.layers.map((l) => l.digest)]) {
        const b = await send(base, `/v2/${repo}/blobs/${d}`, { method: 'HEAD' });
        assert.equal(b.status, 200, `${repo}:${tag} references ${d}, which answers ${b.status}`);
      }
    }
  }
}

/** Every committed object under storage/blobs/ hashes to the digest its path names: nothing partial got there. */
async function checkContentAddressed(dataDir: string): Promise<number> {
  const root = join(dataDir, 'storage', 'blobs');
  let checked = 0;
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const m = /\/blobs\/(sha256|sha512)\/[0-9a-f]{2}\/([0-9a-f]+)\/data$/.exec(path);
    assert.ok(m, `unexpected file in the blob store: ${path}`);
    const [, algorithm, hex] = m as unknown as [string, string, string];
    assert.equal(
      createHash(algorithm)
        .update(await readFile(path))
        .digest('hex'),
      hex,
      `${path} does not hold the bytes of its digest`,
    );
    checked++;
  }
  return checked;
}

/**
 * Every open upload is finished: resumed from the offset the server reports when it can be, or pushed
 * again from scratch. Returns how many resumed.
 */
async function finishOpenUploads(base: string, ledger: Ledger): Promise<{ resumed: number; restarted: number; parkedResumed: number; parked: number }> {
  const counts = { resumed: 0, restarted: 0, parkedResumed: 0, parked: 0 };
  for (const upload of ledger.open.splice(0)) {
    const { repo, blob: b } = upload;
    if (upload.parked) counts.parked++;
    let done = false;
    const status = await send(base, upload.location, {});
    if (status.status === 204) {
      let offset = nextOffset(status.headers.get('range'));
      assert.ok(offset <= b.size, `session claims ${offset} of ${b.size} bytes`);
      let location = status.headers.get('location') as string;
      let resumable = true;
      if (offset < b.size) {
        const rest = b.data.subarray(offset);
        let res = await send(base, location, {
          method: 'PATCH',
          body: rest,
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${b.size - 1}` },
        });
        if (res.status === 416 && res.headers.get('range')) {
          // The session held more than its recorded offset (cut mid-chunk): continue where the bytes end.
          offset = nextOffset(res.headers.get('range'));
          res = await send(base, location, {
            method: 'PATCH',
            body: b.data.subarray(offset),
            headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${b.size - 1}` },
          });
        }
        await res.arrayBuffer();
        resumable = res.status === 202;
        if (resumable) location = res.headers.get('location') as string;
        // 416 with a lease still held: the killed process was writing to it; pushing again is the client's way out.
        else assert.equal(res.status, 416, `resume PATCH of ${b.digest}: ${res.status}`);
      }
      if (resumable) {
        const put = await send(base, `${location}?digest=${b.digest}`, { method: 'PUT' });
        const text = await put.text();
        // 416 here too only while the killed process's lease on the session runs out.
        if (put.status !== 416 || upload.parked) {
          assert.equal(put.status, 201, `resumed upload of ${b.digest}: ${put.status} ${text}`);
          done = true;
          counts.resumed++;
          if (upload.parked) counts.parkedResumed++;
        }
      }
    } else {
      assert.equal(status.status, 404, `status of an interrupted upload: ${status.status}`);
    }
    if (!done) {
      const res = await send(base, `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
        method: 'POST',
        body: b.data,
        headers: { 'Content-Type': 'application/octet-stream' },
      });
      assert.equal(res.status, 201, `pushing ${b.digest} again: ${res.status} ${await res.text()}`);
      counts.restarted++;
    }
    ledger.blobs.push({ repo, blob: b });
  }
  return counts;
}

describe('SIGKILL during concurrent pushes (filesystem + embedded, real process)', () => {
  let scratch: ScratchDir | undefined;
  let server: BerthProcess | undefined;
  after(async () => {
    await server?.kill();
    await scratch?.remove();
  });

  it('keeps every acknowledged blob, manifest and tag, shows nothing partial, and lets uploads finish', async (t) => {
    scratch = await makeScratchDir('crash');
    const ledger = new Ledger();
    server = await startBerthProcess({ dataDir: scratch.path });
    const rounds: Array<{ label: string; killAt: { acks?: number; manifestPut?: number } }> = [
      { label: 'early', killAt: { acks: 6 } },
      { label: 'manifest', killAt: { manifestPut: 4 } },
      { label: 'late', killAt: { acks: 40 } },
    ];
    for (const { label, killAt } of rounds) {
      const base = server.url;
      for (let p = 0; p < 2; p++) await park(base, ledger, `crash/parked${p}`);
      const round: Round = new Round(server, killAt);
      const shared = blob(randomBytes(300_000));
      await Promise.all(Array.from({ length: WORKERS }, (_, id) => worker(base, round, ledger, label, id, shared)));
      assert.ok(round.killed, `round ${label}: the kill was never triggered`);
      assert.deepEqual(round.problems, [], `round ${label}: failures before the kill`);
      await server.kill();

      server = await startBerthProcess({ dataDir: scratch.path });
      const seen = `${ledger.blobs.length} blobs, ${ledger.manifests.length} manifests and ${[...ledger.contended.values()].filter((c) => c.acked).length} contended tags acknowledged so far, ${ledger.unackedBlobs.length} blobs and ${ledger.unackedManifests.length} manifests cut off, ${ledger.open.length} open uploads`;
      await checkAcknowledged(server.url, ledger);
      assert.ok((await checkContentAddressed(scratch.path)) > 0);
      await checkNothingPartial(server.url, ledger);
      await checkContendedTags(server.url, ledger);
      const counts = await finishOpenUploads(server.url, ledger);
      t.diagnostic(`round ${label}: ${seen}; ${counts.resumed} resumed, ${counts.restarted} pushed again`);
      assert.equal(counts.parkedResumed, counts.parked, `round ${label}: sessions parked between chunks must resume: ${JSON.stringify(counts)}`);
      await checkAcknowledged(server.url, ledger);
      ledger.unackedBlobs.length = 0;
      ledger.unackedManifests.length = 0;
    }
    assert.ok(ledger.manifests.length > 0, 'no manifest was ever acknowledged');
  });
});
