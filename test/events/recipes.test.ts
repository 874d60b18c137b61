import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import { createRobot } from '../../auth/robots.js';
import { parseSecrets, verifyBerthSignature } from '../../recipes/hook-signature.js';
import { OCI_MANIFEST, RegistryClient, blob, type Blob } from '../helpers/oci.js';
import { FAKE_SCANNER, berthEvent, berthSignature, postEvent, startRecipe, type CloudEvent, type LogEntry, type RecipeProcess } from '../helpers/recipes.js';
import { freePort } from '../helpers/berth-process.js';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { type ScratchDir, makeScratchDir } from '../helpers/scratch.js';

const SECRET = 'scan-hook-test-secret';
const REPORT_TYPE = 'application/vnd.berth.scan-report.v1+json';
const EMPTY_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';
const SCANNER = `'${process.execPath}' '${FAKE_SCANNER}'`;

interface ReferrersIndex {
  manifests: Array<{ mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }>;
}

function pushedEvent(repo: string, manifest: Blob, tags: string[], extra: Record<string, unknown> = {}): CloudEvent {
  return berthEvent('manifest.pushed', repo, { digest: manifest.digest, mediaType: OCI_MANIFEST, size: manifest.size, tags, ...extra });
}

function scanOutcome(hook: RecipeProcess, eventId: string): Promise<LogEntry> {
  return hook.waitForLog((e) => (e.msg === 'scan done' || e.msg === 'scan failed') && e.eventId === eventId, `the scan of event ${eventId}`);
}

async function scanDone(hook: RecipeProcess, eventId: string): Promise<LogEntry> {
  const entry = await scanOutcome(hook, eventId);
  assert.equal(entry.msg, 'scan done', `scan of ${eventId} failed: ${String(entry.error)}`);
  return entry;
}

/** Scans run one at a time in arrival order: once a fresh event's scan is done, every scan accepted before it has finished. */
async function settle(hook: RecipeProcess, client: RegistryClient, secrets = [SECRET]): Promise<string> {
  const repo = `sentinel/s${randomUUID().slice(0, 8)}`;
  const { manifest } = await client.pushImage(repo, 'v1');
  const event = pushedEvent(repo, manifest, ['v1']);
  assert.equal((await postEvent(hook.url, event, { secrets })).status, 202);
  await scanDone(hook, event.id);
  return `${new URL(client.base).host}/${repo}@${manifest.digest}`;
}

async function scannedRefs(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.length > 0);
}

async function referrers(client: RegistryClient, repo: string, digest: string, artifactType?: string): Promise<ReferrersIndex> {
  const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
  const res = await client.fetch(`/v2/${repo}/referrers/${digest}${query}`);
  assert.equal(res.status, 200);
  return (await res.json()) as ReferrersIndex;
}

describe("recipes' signature check", () => {
  const body = Buffer.from('{"specversion":"1.0"}');
  const now = 1_800_000_000;

  it("accepts a signature by any of the receiver's secrets within five minutes either way", () => {
    const secrets = parseSecrets('old-secret\r\n\n  new-secret  \n');
    assert.deepEqual(secrets, ['old-secret', 'new-secret']);
    for (const t of [now, now - 300, now + 300]) {
      assert.deepEqual(verifyBerthSignature(berthSignature(['new-secret'], body, t), body, secrets, { nowSeconds: now }), { ok: true }, `t=${t}`);
    }
    assert.deepEqual(verifyBerthSignature(berthSignature(['old-secret'], body, now), body, secrets, { nowSeconds: now }), { ok: true });
  });

  it('refuses older or newer timestamps, other secrets, other bodies', () => {
    const check = (header: string, b = body) => verifyBerthSignature(header, b, ['s3cret'], { nowSeconds: now });
    assert.match(String((check(berthSignature(['s3cret'], body, now - 301)) as { reason: string }).reason), /301 ?s/);
    assert.equal(check(berthSignature(['s3cret'], body, now + 301)).ok, false);
    assert.equal(check(berthSignature(['other'], body, now)).ok, false);
    assert.equal(check(berthSignature(['s3cret'], body, now), Buffer.from('{"specversion":"1.1"}')).ok, false);
    assert.equal(check(`t=${now},v1=${'0'.repeat(63)}`).ok, false, 'a short v1 is not compared');
  });
});

describe('scan hook recipe: a stand-in scanner against a real Berth', () => {
  let scratch: ScratchDir;
  let reg: TestRegistry;
  let client: RegistryClient;
  let hook: RecipeProcess;
  let scanLog: string;
  let host: string;

  before(async () => {
    scratch = await makeScratchDir('scan-hook');
    reg = await startTestRegistry();
    client = new RegistryClient(reg.url);
    host = new URL(reg.url).host;
    scanLog = join(scratch.path, 'scans.log');
    const secretFile = join(scratch.path, 'secret');
    await writeFile(secretFile, `${SECRET}\n`);
    hook = await startRecipe(
      'scan-hook',
      ['--registry', reg.url, '--secret-file', secretFile, '--scanner', SCANNER, '--scanner-name', 'fake-scanner', '--max-report-bytes', '16384'],
      { FAKE_SCANNER_LOG: scanLog },
    );
  });
  after(async () => {
    await hook?.stop();
    await reg?.close();
    await scratch?.remove();
  });

  it('attaches the report to the pushed image as a referrer, pushed by digest', async () => {
    const { manifest } = await client.pushImage('team/app', 'v1');
    const event = pushedEvent('team/app', manifest, ['v1', 'latest']);
    const answer = await postEvent(hook.url, event, { secrets: [SECRET] });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const done = await scanDone(hook, event.id);

    const listed = await referrers(client, 'team/app', manifest.digest, REPORT_TYPE);
    assert.equal(listed.manifests.length, 1);
    const referrer = listed.manifests[0]!;
    assert.equal(referrer.artifactType, REPORT_TYPE);
    assert.equal(referrer.digest, done.report);
    assert.equal(referrer.annotations?.['io.berth.scan.scanner'], 'fake-scanner');
    assert.ok(!Number.isNaN(Date.parse(referrer.annotations?.['org.opencontainers.image.created'] ?? '')));
    assert.deepEqual(
      (await referrers(client, 'team/app', manifest.digest)).manifests.map((m) => m.digest),
      [referrer.digest],
    );

    const res = await client.fetch(`/v2/team/app/manifests/${referrer.digest}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(res.status, 200);
    const doc = (await res.json()) as {
      artifactType: string;
      config: { mediaType: string; digest: string; size: number };
      layers: Array<{ mediaType: string; digest: string; size: number }>;
      subject: { mediaType: string; digest: string; size: number };
    };
    assert.equal(doc.artifactType, REPORT_TYPE);
    assert.deepEqual(doc.config, { mediaType: 'application/vnd.oci.empty.v1+json', digest: EMPTY_DIGEST, size: 2 });
    assert.deepEqual(doc.subject, { mediaType: OCI_MANIFEST, digest: manifest.digest, size: manifest.size });
    assert.equal(doc.layers.length, 1);
    assert.equal(doc.layers[0]!.mediaType, 'application/json');

    const report = (await (await client.fetch(`/v2/team/app/blobs/${doc.layers[0]!.digest}`)).json()) as {
      scanner: string;
      ref: string;
      env: Record<string, string>;
    };
    const ref = `${host}/team/app@${manifest.digest}`;
    assert.equal(report.scanner, 'fake-scanner');
    assert.equal(report.ref, ref, 'the reference is the last argument');
    assert.deepEqual(report.env, { ref, repository: 'team/app', digest: manifest.digest, mediaType: OCI_MANIFEST, tags: 'v1,latest', eventId: event.id });

    const tags = (await (await client.fetch('/v2/team/app/tags/list')).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['v1'], 'the report is not tagged');
  });

  it('refuses a missing, wrong, tampered or stale signature with 401 and scans nothing', async () => {
    const { manifest } = await client.pushImage('team/refused', 'v1');
    const event = pushedEvent('team/refused', manifest, ['v1']);
    const before = await scannedRefs(scanLog);
    const other = Buffer.from(JSON.stringify({ ...event, id: 'another' }));
    const stale = Math.floor(Date.now() / 1000) - 600;
    const cases: Array<[string, Parameters<typeof postEvent>[2], RegExp]> = [
      ['no signature', {}, /no Berth-Signature/],
      ['wrong secret', { secrets: ['not-the-secret'] }, /none of the configured secrets/],
      ['signature of another body', { signature: berthSignature([SECRET], other) }, /none of the configured secrets/],
      ['stale timestamp', { signature: berthSignature([SECRET], Buffer.from(JSON.stringify(event)), stale) }, /timestamp/],
      ['garbage', { signature: 'v1=zz' }, /t=/],
    ];
    for (const [label, options, reason] of cases) {
      const answer = await postEvent(hook.url, event, options);
      assert.equal(answer.status, 401, label);
      assert.match(String(answer.body.error), reason, label);
    }
    // Several v1 entries (Berth rotating its secret): one that matches is enough.
    const rotated = pushedEvent('team/refused', manifest, ['v1']);
    assert.equal((await postEvent(hook.url, rotated, { secrets: ['old-secret', SECRET] })).status, 202);
    const sentinel = await settle(hook, client);
    assert.deepEqual((await scannedRefs(scanLog)).slice(before.length), [`${host}/team/refused@${manifest.digest}`, sentinel]);
    assert.equal((await scanOutcome(hook, rotated.id)).msg, 'scan done');
    assert.equal(
      hook.entries.some((e) => e.eventId === event.id && e.msg !== 'event refused'),
      false,
      'the refused event id never reached a scan',
    );
    assert.equal(hook.output().includes(SECRET), false, 'the secret is never logged');
  });

  it('scans a redelivered event id once', async () => {
    const { manifest } = await client.pushImage('team/dup', 'v1');
    const event = pushedEvent('team/dup', manifest, ['v1']);
    const before = await scannedRefs(scanLog);
    assert.equal((await postEvent(hook.url, event, { secrets: [SECRET] })).status, 202);
    const again = await postEvent(hook.url, event, { secrets: [SECRET], attempt: 2 });
    assert.deepEqual([again.status, again.body.status], [200, 'duplicate']);
    await scanDone(hook, event.id);
    const late = await postEvent(hook.url, event, { secrets: [SECRET], attempt: 3 });
    assert.deepEqual([late.status, late.body.status], [200, 'duplicate']);
    const sentinel = await settle(hook, client);
    assert.deepEqual((await scannedRefs(scanLog)).slice(before.length), [`${host}/team/dup@${manifest.digest}`, sentinel]);
    assert.equal((await referrers(client, 'team/dup', manifest.digest)).manifests.length, 1);
  });

  it("ignores its own report's push, other artifacts and other events, but scans images whatever their artifactType says", async () => {
    const { manifest } = await client.pushImage('team/own', 'v1');
    const first = pushedEvent('team/own', manifest, ['v1']);
    assert.equal((await postEvent(hook.url, first, { secrets: [SECRET] })).status, 202);
    const done = await scanDone(hook, first.id);
    const reportRes = await client.fetch(`/v2/team/own/manifests/${String(done.report)}`, { headers: { accept: OCI_MANIFEST } });
    const reportManifest = blob(Buffer.from(await reportRes.arrayBuffer()));
    const before = await scannedRefs(scanLog);

    // What Berth sends when the hook pushes its report: an image manifest with an artifactType and a subject.
    const own = pushedEvent('team/own', reportManifest, [], { artifactType: REPORT_TYPE, subject: manifest.digest });
    const ownAnswer = await postEvent(hook.url, own, { secrets: [SECRET] });
    assert.deepEqual([ownAnswer.status, ownAnswer.body.status], [200, 'ignored']);
    assert.match(String(ownAnswer.body.reason), /referrer/);
    const chart = pushedEvent('team/own', blob('chart'), ['1.0.0'], { artifactType: 'application/vnd.cncf.helm.config.v1+json' });
    assert.match(String((await postEvent(hook.url, chart, { secrets: [SECRET] })).body.reason), /artifact/);
    const index = berthEvent('manifest.pushed', 'team/own', {
      digest: blob('x').digest,
      mediaType: 'application/vnd.oci.artifact.manifest.v1+json',
      size: 1,
      tags: [],
    });
    assert.match(String((await postEvent(hook.url, index, { secrets: [SECRET] })).body.reason), /not an image/);
    const moved = berthEvent('tag.moved', 'team/own', { digest: manifest.digest, tag: 'v1', previousDigest: manifest.digest });
    assert.match(String((await postEvent(hook.url, moved, { secrets: [SECRET] })).body.reason), /not a manifest push/);

    // An image manifest's artifactType defaults to its config's media type; Berth may pass that on.
    const { manifest: image } = await client.pushImage('team/own', 'v2');
    const withConfigType = pushedEvent('team/own', image, ['v2'], { artifactType: 'application/vnd.oci.image.config.v1+json' });
    assert.equal((await postEvent(hook.url, withConfigType, { secrets: [SECRET] })).status, 202);
    const sentinel = await settle(hook, client);
    assert.deepEqual((await scannedRefs(scanLog)).slice(before.length), [`${host}/team/own@${image.digest}`, sentinel]);
    assert.deepEqual((await referrers(client, 'team/own', reportManifest.digest)).manifests, [], 'no report on the report');
  });

  it('a failed scan attaches nothing, says why, and is scanned again when Berth replays the event', async () => {
    const { manifest } = await client.pushImage('team/broken', 'v1');
    const event = pushedEvent('team/broken', manifest, ['v1']);
    assert.equal((await postEvent(hook.url, event, { secrets: [SECRET] })).status, 202);
    const failed = await scanOutcome(hook, event.id);
    assert.equal(failed.msg, 'scan failed');
    assert.equal(failed.stage, 'scan');
    assert.match(String(failed.error), /exited with code 3; stderr: fake-scanner: cannot scan/);
    assert.equal(failed.ref, `${host}/team/broken@${manifest.digest}`);
    assert.deepEqual((await referrers(client, 'team/broken', manifest.digest)).manifests, []);

    const replayed = await postEvent(hook.url, event, { secrets: [SECRET], attempt: 1 });
    assert.deepEqual([replayed.status, replayed.body.status], [202, 'queued'], 'a failed event is not remembered as done');
    await settle(hook, client);
    assert.equal(hook.entries.filter((e) => e.msg === 'scan failed' && e.eventId === event.id).length, 2);
  });

  it('a report over --max-report-bytes fails the scan instead of attaching a truncated one', async () => {
    const { manifest } = await client.pushImage('team/big', 'v1');
    const event = pushedEvent('team/big', manifest, ['v1']);
    assert.equal((await postEvent(hook.url, event, { secrets: [SECRET] })).status, 202);
    const failed = await scanOutcome(hook, event.id);
    assert.equal(failed.msg, 'scan failed');
    assert.match(String(failed.error), /larger than 16384 bytes/);
    assert.deepEqual((await referrers(client, 'team/big', manifest.digest)).manifests, []);
  });

  it('answers 400, 405 and 415 to what is not a signed CloudEvent POST', async () => {
    assert.equal((await fetch(hook.url)).status, 405);
    const distribution = await fetch(hook.url, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.docker.distribution.events.v2+json' },
      body: '{"events":[]}',
    });
    assert.equal(distribution.status, 415);
    assert.match(((await distribution.json()) as { error: string }).error, /cloudevents/);
    const body = Buffer.from('{"not":"an event"}');
    const res = await fetch(hook.url, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json', 'berth-signature': berthSignature([SECRET], body) },
      body,
    });
    assert.equal(res.status, 400);
  });
});

/** A TCP gate the stand-in scanner waits at: scans stay "running" until the test lets them go. */
class ScanGate {
  readonly server: Server;
  readonly waiting: Array<{ ref: string; socket: Socket }> = [];
  #arrivals: Array<() => void> = [];
  #open = false;

  constructor() {
    this.server = createServer((socket) => {
      socket.once('data', (data) => {
        const entry = { ref: data.toString('utf8').trim(), socket };
        if (this.#open) socket.end('go\n');
        else this.waiting.push(entry);
        for (const a of this.#arrivals.splice(0)) a();
      });
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as { port: number }).port;
  }

  /** Resolves once a scan is held at the gate. */
  async held(): Promise<string> {
    while (this.waiting.length === 0) await new Promise<void>((resolve) => this.#arrivals.push(resolve));
    return this.waiting[0]!.ref;
  }

  /** Lets the held scans go, and every later one straight through. */
  open(): void {
    this.#open = true;
    for (const w of this.waiting.splice(0)) w.socket.end('go\n');
  }

  async close(): Promise<void> {
    this.open();
    this.server.close();
    await once(this.server, 'close');
  }
}

describe('scan hook recipe: one scan at a time, a bounded queue', () => {
  let scratch: ScratchDir;
  let reg: TestRegistry;
  let client: RegistryClient;
  let hook: RecipeProcess;
  let gate: ScanGate;

  before(async () => {
    scratch = await makeScratchDir('scan-queue');
    reg = await startTestRegistry();
    client = new RegistryClient(reg.url);
    gate = new ScanGate();
    const port = await gate.listen();
    const secretFile = join(scratch.path, 'secret');
    await writeFile(secretFile, SECRET);
    hook = await startRecipe('scan-hook', ['--registry', reg.url, '--secret-file', secretFile, '--scanner', SCANNER, '--queue', '1'], {
      FAKE_SCANNER_GATE: String(port),
    });
  });
  after(async () => {
    await gate?.close();
    await hook?.stop();
    await reg?.close();
    await scratch?.remove();
  });

  it('answers 503 with Retry-After when the queue is full, and takes the event once there is room', async () => {
    const events: CloudEvent[] = [];
    for (const name of ['a', 'b', 'c']) {
      const { manifest } = await client.pushImage(`queue/${name}`, 'v1');
      events.push(pushedEvent(`queue/${name}`, manifest, ['v1']));
    }
    const [a, b, c] = events as [CloudEvent, CloudEvent, CloudEvent];
    assert.equal((await postEvent(hook.url, a, { secrets: [SECRET] })).status, 202);
    assert.match(await gate.held(), /queue\/a@/, 'the first scan runs');
    const queued = await postEvent(hook.url, b, { secrets: [SECRET] });
    assert.deepEqual([queued.status, queued.body.position], [202, 1]);
    const full = await postEvent(hook.url, c, { secrets: [SECRET] });
    assert.equal(full.status, 503);
    assert.equal(full.headers.get('retry-after'), '60');
    assert.equal(((await (await fetch(`${hook.url}/healthz`)).json()) as { queued: number }).queued, 1);

    gate.open();
    await scanDone(hook, a.id);
    await scanDone(hook, b.id);
    // Berth retries the 503 with the same id; it was not remembered, so it is taken now.
    assert.equal((await postEvent(hook.url, c, { secrets: [SECRET], attempt: 2 })).status, 202);
    await scanDone(hook, c.id);
  });
});

describe('scan hook recipe: pushing its reports through the token flow', () => {
  let scratch: ScratchDir;
  let auth: Auth;
  let reg: TestRegistry;
  let client: RegistryClient;
  let secretFile: string;
  let passwordFile: string;
  const hooks: RecipeProcess[] = [];

  async function robotToken(password: string): Promise<string> {
    const q = new URLSearchParams({ service: 'berth', scope: 'repository:team/app:pull,push' });
    const res = await fetch(`${reg.url}/auth/token?${q}`, {
      headers: { authorization: `Basic ${Buffer.from(`robot+scanner:${password}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  async function scanOnce(args: string[]): Promise<{ entry: LogEntry; digest: string }> {
    const hook = await startRecipe('scan-hook', ['--registry', reg.url, '--secret-file', secretFile, '--scanner', SCANNER, ...args]);
    hooks.push(hook);
    const { manifest } = await client.pushImage('team/app', `t${hooks.length}`);
    const event = pushedEvent('team/app', manifest, [`t${hooks.length}`]);
    assert.equal((await postEvent(hook.url, event, { secrets: [SECRET] })).status, 202);
    return { entry: await scanOutcome(hook, event.id), digest: manifest.digest };
  }

  before(async () => {
    scratch = await makeScratchDir('scan-auth');
    const { secret } = await createRobot(join(scratch.path, 'auth', 'robots.json'), { name: 'scanner', repositories: ['team/**'], actions: ['pull', 'push'] });
    auth = await createAuth({ enabled: true, rules: [] }, { dataDir: scratch.path, log: { info() {}, warn() {}, error() {} } });
    reg = await startTestRegistry({ deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) } });
    client = new RegistryClient(reg.url, { authorization: `Bearer ${await robotToken(secret)}` });
    secretFile = join(scratch.path, 'secret');
    passwordFile = join(scratch.path, 'password');
    await writeFile(secretFile, SECRET);
    await writeFile(passwordFile, `${secret}\n`);
  });
  after(async () => {
    for (const h of hooks) await h.stop();
    await reg?.close();
    await auth?.close();
    await scratch?.remove();
  });

  it('gets a token with --username/--password-file and attaches the report', async () => {
    const { entry, digest } = await scanOnce(['--username', 'robot+scanner', '--password-file', passwordFile]);
    assert.equal(entry.msg, 'scan done', String(entry.error));
    assert.equal((await referrers(client, 'team/app', digest, REPORT_TYPE)).manifests.length, 1);
  });

  it('sends a --token-file token as it is', async () => {
    const tokenFile = join(scratch.path, 'token');
    await writeFile(tokenFile, `${(client.headers.authorization ?? '').replace('Bearer ', '')}\n`);
    const { entry, digest } = await scanOnce(['--token-file', tokenFile]);
    assert.equal(entry.msg, 'scan done', String(entry.error));
    assert.equal((await referrers(client, 'team/app', digest, REPORT_TYPE)).manifests.length, 1);
  });

  it('a registry that cannot be reached: the attach fails naming it', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const hook = await startRecipe('scan-hook', ['--registry', closed, '--secret-file', secretFile, '--scanner', SCANNER]);
    hooks.push(hook);
    const event = pushedEvent('team/app', blob('not pushed anywhere'), ['v1']);
    assert.equal((await postEvent(hook.url, event, { secrets: [SECRET] })).status, 202);
    const entry = await scanOutcome(hook, event.id);
    assert.deepEqual([entry.msg, entry.stage], ['scan failed', 'attach']);
    assert.equal(entry.error, `cannot reach ${closed}: ECONNREFUSED`);
  });

  it('without credentials the attach fails with a message that says so', async () => {
    const { entry, digest } = await scanOnce([]);
    assert.equal(entry.msg, 'scan failed');
    assert.equal(entry.stage, 'attach');
    assert.match(String(entry.error), /anonymously/);
    assert.deepEqual((await referrers(client, 'team/app', digest)).manifests, []);
  });
});
