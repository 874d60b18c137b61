// podman, buildah, containerd's ctr, the docker CLI and umoci against `berth serve`, with auth off and
// on. Scenarios are written once and run for every client that can do them; skopeo has its own suite.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setUserPassword } from '../../auth/users.js';
import { startBerthProcess, type BerthProcess } from '../helpers/berth-process.js';
import {
  containersSandbox,
  makeClientScratch,
  runTool,
  runToolExpectingFailure,
  startContainerd,
  storageFlags,
  type Containerd,
  type ToolResult,
} from '../helpers/clients.js';
import { OCI_INDEX, OCI_MANIFEST, RegistryClient, blob } from '../helpers/oci.js';
import { OciLayout, type LayoutDescriptor } from '../helpers/oci-layout.js';
import type { ScratchDir } from '../helpers/scratch.js';

const PASSWORD = 'alice-e2e-password';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const MANIFEST_ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(', ');

type Mode = 'auth off' | 'auth on';
const MODES: Mode[] = ['auth off', 'auth on'];

interface AccessEntry {
  method: string;
  url: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  userAgent: string;
}

interface Target {
  mode: Mode;
  berth: BerthProcess;
  /** host:port, as clients name the registry. */
  host: string;
  /** The namespace this target's repositories live in (alice/ may push under alice/ only). */
  ns: string;
  user?: { name: string; password: string };
  access: AccessEntry[];
  /** Emits 'entry' for every access-log line, which Berth writes after the response is sent. */
  accessEvents: EventEmitter;
}

/** A manifest as the registry holds it: what a pull must reproduce. */
interface ImageRef {
  digest: string;
  config: string;
}

interface Manifest {
  mediaType?: string;
  config?: { digest: string };
  layers?: Array<{ digest: string; size: number }>;
  manifests?: Array<{ digest: string; platform?: { os: string; architecture: string } }>;
  subject?: { digest: string };
  artifactType?: string;
}

/** The image umoci builds: a base layer holding a text file and ~1.5 MB of random bytes. */
interface UmociImage {
  layout: string;
  tag: string;
  tar: string;
  manifest: ImageRef;
  layer: { digest: string; size: number };
}

interface Context {
  scratch: ScratchDir;
  targets: Map<Mode, Target>;
  containerd: Containerd;
  podmanEnv: Record<string, string>;
  buildahEnv: Record<string, string>;
  dockerEnv: Record<string, string>;
  image: UmociImage;
  /**
   * amd64 + arm64 images in Docker's media types, a Docker manifest list over them, and an artifact
   * whose subject is the amd64 image. Docker's types because the docker CLI of Debian 12 (20.10) reads
   * no OCI image manifests: it neither accepts nor parses them.
   */
  multi: { layout: OciLayout; tar: string; amd64: LayoutDescriptor; arm64: LayoutDescriptor; list: LayoutDescriptor; artifact: LayoutDescriptor };
}

let ctx: Context | undefined;
function c(): Context {
  if (!ctx) throw new Error('suite not set up');
  return ctx;
}
function target(mode: Mode): Target {
  const t = c().targets.get(mode);
  if (!t) throw new Error(`no target for ${mode}`);
  return t;
}

function parseManifest(text: string): Manifest {
  return JSON.parse(text) as Manifest;
}

async function tokenFor(t: Target, repo: string, actions: string): Promise<Record<string, string>> {
  if (!t.user) return {};
  const q = new URLSearchParams({ service: 'berth', scope: `repository:${repo}:${actions}` });
  const res = await fetch(`${t.berth.url}/auth/token?${q}`, {
    headers: { authorization: `Basic ${Buffer.from(`${t.user.name}:${t.user.password}`).toString('base64')}` },
  });
  assert.equal(res.status, 200, `token for ${repo}`);
  return { authorization: `Bearer ${((await res.json()) as { token: string }).token}` };
}

/** What the registry answers for repo:ref, read over plain HTTP (the referee for every client). */
async function registryManifest(t: Target, repo: string, ref: string): Promise<{ digest: string; manifest: Manifest }> {
  const res = await fetch(`${t.berth.url}/v2/${repo}/manifests/${ref}`, { headers: { accept: MANIFEST_ACCEPT, ...(await tokenFor(t, repo, 'pull')) } });
  assert.equal(res.status, 200, `GET ${repo}:${ref}`);
  return { digest: res.headers.get('docker-content-digest') ?? '', manifest: parseManifest(await res.text()) };
}

/** Pushes a layout's image (config, layers, manifest) under `tag` over HTTP: input for the clients that only assemble indexes. */
async function seedLayoutImage(t: Target, layout: OciLayout, image: LayoutDescriptor, repo: string, tag: string): Promise<void> {
  const client = new RegistryClient(t.berth.url, await tokenFor(t, repo, 'pull,push'));
  const read = (digest: string) => readFile(join(layout.dir, 'blobs', 'sha256', digest.slice(7)));
  const manifest = parseManifest((await read(image.digest)).toString('utf8'));
  for (const d of [manifest.config?.digest ?? '', ...(manifest.layers ?? []).map((l) => l.digest)]) await client.pushBlob(repo, blob(await read(d)));
  await client.pushManifest(repo, tag, blob(await read(image.digest)), manifest.mediaType ?? OCI_MANIFEST);
}

const ACCESS_LOG_WAIT_MS = 5_000;

/**
 * The requests for repo logged since `since`, once one of them matches `last`: the log line of a
 * request can arrive after the client that made it has exited.
 */
async function requestsFor(t: Target, repo: string, since: number, last: (e: AccessEntry) => boolean): Promise<AccessEntry[]> {
  const mine = () => t.access.slice(since).filter((e) => e.url.startsWith(`/v2/${repo}/`));
  if (!mine().some(last)) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        t.accessEvents.off('entry', check);
        reject(new Error(`no matching access-log line for ${repo} within ${ACCESS_LOG_WAIT_MS} ms: ${JSON.stringify(mine())}`));
      }, ACCESS_LOG_WAIT_MS);
      const check = () => {
        if (!mine().some(last)) return;
        clearTimeout(timer);
        t.accessEvents.off('entry', check);
        resolve();
      };
      t.accessEvents.on('entry', check);
    });
  }
  return mine();
}

// ---- the clients -------------------------------------------------------------------------------

const slug = (mode: Mode) => mode.replace(' ', '-');
const store = (client: 'podman' | 'buildah', mode: Mode, role: string) =>
  storageFlags(
    join(c().scratch.path, client, `${role}-${slug(mode)}`),
    join(c().scratch.path, 'rr', `${client[0]}-${role}-${mode === 'auth on' ? 'on' : 'off'}`),
  );
const podmanStore = (mode: Mode, role: string) => store('podman', mode, role);
const buildahStore = (mode: Mode, role: string) => store('buildah', mode, role);
const podman = (args: string[], input?: string) => runTool('podman', args, { env: c().podmanEnv, ...(input === undefined ? {} : { input }) });
const buildah = (args: string[], input?: string) => runTool('buildah', args, { env: c().buildahEnv, ...(input === undefined ? {} : { input }) });
const docker = (args: string[], input?: string) => runTool('docker', args, { env: c().dockerEnv, ...(input === undefined ? {} : { input }) });
const ctrArgs = (namespace: string, args: string[]) => ['-a', c().containerd.address, '-n', namespace, ...args];
const ctrEnv = () => ({ HOME: join(c().scratch.path, 'ctr-home') });
const ctr = (namespace: string, args: string[]) => runTool('ctr', ctrArgs(namespace, args), { env: ctrEnv() });
const ctrCreds = (t: Target) => (t.user ? ['-u', `${t.user.name}:${t.user.password}`] : []);
const ctrNs = (mode: Mode, role: string) => `${role}-${slug(mode)}`;

async function digestFile(dir: string, name: string): Promise<string> {
  return (await readFile(join(dir, name), 'utf8')).trim();
}

/** Each client logs in once per target (podman, buildah and docker keep the credentials in their sandbox). */
const logins = new Map<string, Promise<ToolResult>>();
function ensureLogin(client: 'podman' | 'buildah' | 'docker', t: Target): Promise<unknown> {
  if (!t.user) return Promise.resolve();
  const key = `${client} ${t.host}`;
  let login = logins.get(key);
  if (!login) {
    const args = ['login', '-u', t.user.name, '--password-stdin', t.host];
    login =
      client === 'podman'
        ? podman(['login', '--tls-verify=false', ...args.slice(1)], t.user.password)
        : client === 'buildah'
          ? buildah(['login', '--tls-verify=false', ...args.slice(1)], t.user.password)
          : docker(args, t.user.password);
    logins.set(key, login);
  }
  return login;
}

interface ImageClient {
  name: 'podman' | 'buildah' | 'ctr';
  /** How the client sends blob bytes: in one PATCH between POST and PUT, or in the closing PUT. */
  uploadsWith: 'PATCH' | 'PUT';
  /** Pushes an image derived from the umoci one to host/repo:v1; returns what it says it pushed. */
  push(t: Target, repo: string): Promise<ImageRef>;
  /** Pulls host/repo:v1 into the store named `store` (one per test, so the pull is a real one); returns what it got. */
  pull(t: Target, repo: string, store: string): Promise<ImageRef>;
}

const podmanClient: ImageClient = {
  name: 'podman',
  uploadsWith: 'PATCH',
  async push(t, repo) {
    await ensureLogin('podman', t);
    const store = podmanStore(t.mode, 'push');
    const id = (await podman([...store, 'pull', '-q', `oci:${c().image.layout}:${c().image.tag}`])).stdout.trim();
    const dir = join(c().scratch.path, 'podman');
    await podman([...store, 'push', '--tls-verify=false', '--digestfile', join(dir, 'pushed'), id, `docker://${t.host}/${repo}:v1`]);
    return { digest: await digestFile(dir, 'pushed'), config: `sha256:${id}` };
  },
  async pull(t, repo, role) {
    await ensureLogin('podman', t);
    const store = podmanStore(t.mode, role);
    const id = (await podman([...store, 'pull', '-q', '--tls-verify=false', `docker://${t.host}/${repo}:v1`])).stdout.trim();
    const digest = (await podman([...store, 'image', 'inspect', '--format', '{{.Digest}}', `${t.host}/${repo}:v1`])).stdout.trim();
    return { digest, config: `sha256:${id}` };
  },
};

const buildahClient: ImageClient = {
  name: 'buildah',
  uploadsWith: 'PATCH',
  async push(t, repo) {
    await ensureLogin('buildah', t);
    const store = buildahStore(t.mode, 'push');
    // buildah builds: a working container from the umoci image, one file added, committed.
    const container = (await buildah([...store, 'from', '--name', `e2e-${slug(t.mode)}`, `oci:${c().image.layout}:${c().image.tag}`])).stdout.trim();
    const note = join(c().scratch.path, 'buildah', 'note.txt');
    await writeFile(note, `built by buildah for ${t.mode}\n`);
    await buildah([...store, 'copy', container, note, '/note.txt']);
    const id = (await buildah([...store, 'commit', '-q', '--format', 'oci', '--rm', container, `${t.host}/${repo}:v1`])).stdout.trim();
    const dir = join(c().scratch.path, 'buildah');
    await buildah([...store, 'push', '--tls-verify=false', '--digestfile', join(dir, 'pushed'), `${t.host}/${repo}:v1`, `docker://${t.host}/${repo}:v1`]);
    return { digest: await digestFile(dir, 'pushed'), config: `sha256:${id}` };
  },
  async pull(t, repo, role) {
    await ensureLogin('buildah', t);
    const store = buildahStore(t.mode, role);
    const id = (await buildah([...store, 'pull', '-q', '--tls-verify=false', `docker://${t.host}/${repo}:v1`])).stdout.trim();
    const digest = (await buildah([...store, 'inspect', '--type', 'image', '--format', '{{.FromImageDigest}}', `${t.host}/${repo}:v1`])).stdout.trim();
    return { digest, config: `sha256:${id}` };
  },
};

/** `ctr images ls` row for `ref`: REF TYPE DIGEST SIZE PLATFORMS LABELS. */
async function ctrImageDigest(namespace: string, ref: string): Promise<string> {
  const rows = (await ctr(namespace, ['images', 'ls'])).stdout.split('\n').map((l) => l.split(/\s+/));
  const row = rows.find((r) => r[0] === ref);
  assert.ok(row?.[2], `ctr has no image ${ref}`);
  return row[2];
}

const ctrClient: ImageClient = {
  name: 'ctr',
  uploadsWith: 'PUT',
  async push(t, repo) {
    const ns = ctrNs(t.mode, 'push');
    // The umoci layout as it is: containerd pushes exactly the manifest it imported.
    await ctr(ns, ['images', 'import', '--no-unpack', '--base-name', 'umoci', c().image.tar]);
    await ctr(ns, ['images', 'tag', '--force', `umoci:${c().image.tag}`, `${t.host}/${repo}:v1`]);
    await ctr(ns, ['images', 'push', '--plain-http', ...ctrCreds(t), `${t.host}/${repo}:v1`]);
    return c().image.manifest;
  },
  async pull(t, repo, role) {
    const ns = ctrNs(t.mode, role);
    await ctr(ns, ['images', 'pull', '--plain-http', '--snapshotter', 'native', ...ctrCreds(t), `${t.host}/${repo}:v1`]);
    const digest = await ctrImageDigest(ns, `${t.host}/${repo}:v1`);
    const manifest = parseManifest((await ctr(ns, ['content', 'get', digest])).stdout);
    return { digest, config: manifest.config?.digest ?? '' };
  },
};

const IMAGE_CLIENTS = [podmanClient, buildahClient, ctrClient];

/** ctr pushes the Docker-format amd64 image of the multi layout to host/repo:tag (something every docker CLI reads). */
async function ctrPushDockerImage(t: Target, repo: string, tag: string, namespace: string): Promise<string> {
  await ctr(namespace, ['images', 'import', '--no-unpack', '--base-name', 'multi', c().multi.tar]);
  await ctr(namespace, ['images', 'tag', '--force', 'multi:amd64', `${t.host}/${repo}:${tag}`]);
  await ctr(namespace, ['images', 'push', '--plain-http', ...ctrCreds(t), `${t.host}/${repo}:${tag}`]);
  return c().multi.amd64.digest;
}

interface IndexMaker {
  name: 'podman' | 'buildah' | 'docker' | 'ctr';
  /** Assembles host/repo:v1 from host/repo:amd64 and host/repo:arm64 (or from the layout, for ctr); returns the index digest it reports. */
  pushIndex(t: Target, repo: string): Promise<string>;
}

async function seedPlatforms(t: Target, repo: string): Promise<void> {
  const { layout, amd64, arm64 } = c().multi;
  await seedLayoutImage(t, layout, amd64, repo, 'amd64');
  await seedLayoutImage(t, layout, arm64, repo, 'arm64');
}

function containersIndexMaker(name: 'podman' | 'buildah', run: (args: string[]) => Promise<ToolResult>, store: (mode: Mode) => string[]): IndexMaker {
  return {
    name,
    async pushIndex(t, repo) {
      await ensureLogin(name, t);
      await seedPlatforms(t, repo);
      const list = `localhost/${name}-list-${slug(t.mode)}`;
      await run([...store(t.mode), 'manifest', 'create', list]);
      for (const arch of ['amd64', 'arm64']) await run([...store(t.mode), 'manifest', 'add', '--tls-verify=false', list, `docker://${t.host}/${repo}:${arch}`]);
      const file = join(c().scratch.path, name, 'index-digest');
      await run([...store(t.mode), 'manifest', 'push', '--all', '--tls-verify=false', '--digestfile', file, list, `docker://${t.host}/${repo}:v1`]);
      return (await readFile(file, 'utf8')).trim();
    },
  };
}

const INDEX_MAKERS: IndexMaker[] = [
  containersIndexMaker('podman', podman, (m) => podmanStore(m, 'push')),
  containersIndexMaker('buildah', buildah, (m) => buildahStore(m, 'push')),
  {
    name: 'docker',
    async pushIndex(t, repo) {
      await ensureLogin('docker', t);
      await seedPlatforms(t, repo);
      const list = `${t.host}/${repo}:v1`;
      await docker(['manifest', 'create', '--insecure', list, `${t.host}/${repo}:amd64`, `${t.host}/${repo}:arm64`]);
      const out = (await docker(['manifest', 'push', '--insecure', '--purge', list])).stdout.trim().split('\n');
      return out[out.length - 1] ?? '';
    },
  },
  {
    name: 'ctr',
    async pushIndex(t, repo) {
      const ns = ctrNs(t.mode, 'index');
      await ctr(ns, ['images', 'import', '--no-unpack', '--all-platforms', '--base-name', 'multi', c().multi.tar]);
      await ctr(ns, ['images', 'tag', '--force', 'multi:list', `${t.host}/${repo}:v1`]);
      await ctr(ns, ['images', 'push', '--plain-http', ...ctrCreds(t), `${t.host}/${repo}:v1`]);
      return c().multi.list.digest;
    },
  },
];

/** The index readers: each returns the index JSON it got for host/repo:v1. */
const INDEX_READERS: Array<{ name: string; read(t: Target, repo: string): Promise<Manifest> }> = [
  {
    name: 'docker manifest inspect',
    async read(t, repo) {
      await ensureLogin('docker', t);
      return parseManifest((await docker(['manifest', 'inspect', '--insecure', `${t.host}/${repo}:v1`])).stdout);
    },
  },
  {
    name: 'podman manifest inspect',
    async read(t, repo) {
      const flags = podmanStore(t.mode, 'pull');
      // podman 4.3 takes no --tls-verify here: the sandbox's registries.conf marks the host insecure.
      if (!t.user) return parseManifest((await podman([...flags, 'manifest', 'inspect', `${t.host}/${repo}:v1`])).stdout);
      // Before 4.6 (containers/podman#19180) a remote `manifest inspect` sends no credentials at all, so
      // with auth on podman reads the index the way that does log in: every instance into a local list.
      await ensureLogin('podman', t);
      const list = `localhost/read-${repo.replace(/\//g, '-')}`;
      await podman([...flags, 'manifest', 'create', list]);
      await podman([...flags, 'manifest', 'add', '--all', '--tls-verify=false', list, `docker://${t.host}/${repo}:v1`]);
      return parseManifest((await podman([...flags, 'manifest', 'inspect', list])).stdout);
    },
  },
];

// ---- set-up ------------------------------------------------------------------------------------

async function buildUmociImage(dir: string): Promise<UmociImage> {
  const layout = join(dir, 'layout');
  const bundle = join(dir, 'bundle');
  const tag = 'base';
  await runTool('umoci', ['init', '--layout', layout]);
  await runTool('umoci', ['new', '--image', `${layout}:${tag}`]);
  await runTool('umoci', ['unpack', '--rootless', '--image', `${layout}:${tag}`, bundle]);
  await writeFile(join(bundle, 'rootfs', 'hello.txt'), 'hello from umoci\n');
  // Random, so it does not compress: the layer is big enough to be streamed in many reads.
  await writeFile(join(bundle, 'rootfs', 'random.bin'), randomBytes(1_500_000));
  await runTool('umoci', ['repack', '--image', `${layout}:${tag}`, bundle]);
  await runTool('umoci', ['config', '--image', `${layout}:${tag}`, '--os', 'linux', '--architecture', 'amd64', '--config.cmd', '/hello.txt']);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const digest = index.manifests[0]?.digest ?? '';
  const manifest = parseManifest(await readFile(join(layout, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
  const layer = manifest.layers?.[manifest.layers.length - 1];
  assert.ok(layer && manifest.config, 'umoci wrote an image with a layer');
  const tar = join(dir, 'layout.tar');
  await runTool('tar', ['-C', layout, '-cf', tar, '.']);
  return { layout, tag, tar, manifest: { digest, config: manifest.config.digest }, layer: { digest: layer.digest, size: layer.size } };
}

/** An image in Docker's media types (schema 2) with one layer of `size` random bytes. */
async function addDockerImage(layout: OciLayout, size: number, platform: { os: string; architecture: string }): Promise<LayoutDescriptor> {
  const layer = await layout.addLayer('file0', size);
  const config = await layout.addBlob(
    Buffer.from(
      JSON.stringify({ ...platform, created: '2026-01-01T00:00:00Z', config: {}, rootfs: { type: 'layers', diff_ids: [layer.diffId] }, history: [] }),
    ),
    'application/vnd.docker.container.image.v1+json',
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config,
    layers: [{ ...layer.desc, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }],
  };
  return { ...(await layout.addBlob(Buffer.from(JSON.stringify(manifest)), DOCKER_MANIFEST)), platform };
}

async function buildMultiLayout(dir: string): Promise<Context['multi']> {
  const layout = await new OciLayout(join(dir, 'layout')).init();
  const amd64 = await addDockerImage(layout, 20_000, { os: 'linux', architecture: 'amd64' });
  const arm64 = await addDockerImage(layout, 21_000, { os: 'linux', architecture: 'arm64' });
  const list = await layout.addBlob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [amd64, arm64] })), DOCKER_LIST);
  const empty = await layout.addBlob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
  const payload = await layout.addBlob(Buffer.from(`signature ${randomBytes(8).toString('hex')}`), 'application/vnd.example.signature');
  const { platform: _p, ...subject } = amd64;
  const artifact = await layout.addBlob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.signature',
        config: empty,
        layers: [payload],
        subject,
      }),
    ),
    OCI_MANIFEST,
  );
  await layout.tag(list, 'list');
  await layout.tag(amd64, 'amd64');
  await layout.tag(artifact, 'sig');
  const tar = join(dir, 'layout.tar');
  await runTool('tar', ['-C', layout.dir, '-cf', tar, '.']);
  return { layout, tar, amd64, arm64, list, artifact };
}

async function startTarget(mode: Mode, dir: string): Promise<Target> {
  await mkdir(dir, { recursive: true });
  if (mode === 'auth on') await setUserPassword(join(dir, 'auth', 'htpasswd'), 'alice', PASSWORD, 4);
  const berth = await startBerthProcess({
    dataDir: dir,
    env: { BERTH_LOG_ACCESS: 'true' },
    ...(mode === 'auth on' ? { config: { auth: { enabled: true, userNamespaces: true } } } : {}),
  });
  const access: AccessEntry[] = [];
  const accessEvents = new EventEmitter();
  createInterface({ input: berth.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    if (!line.includes('"msg":"request"')) return;
    const e = JSON.parse(line) as AccessEntry;
    access.push({ method: e.method, url: e.url, status: e.status, bytesIn: e.bytesIn, bytesOut: e.bytesOut, userAgent: e.userAgent });
    accessEvents.emit('entry');
  });
  const host = berth.url.replace('http://', '');
  const base = { mode, berth, host, access, accessEvents };
  return mode === 'auth on' ? { ...base, ns: 'alice', user: { name: 'alice', password: PASSWORD } } : { ...base, ns: 'e2e' };
}

describe('real clients against berth serve: podman, buildah, ctr, docker, umoci', { timeout: 300_000 }, () => {
  // Resources are stopped in reverse order even when set-up fails halfway.
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    const scratch = await makeClientScratch();
    cleanups.push(() => scratch.remove());
    const targets = new Map<Mode, Target>();
    for (const [i, mode] of MODES.entries()) {
      const t = await startTarget(mode, join(scratch.path, `berth-${i}`));
      cleanups.push(async () => void (await t.berth.stop()));
      targets.set(mode, t);
    }
    const containerd = await startContainerd(join(scratch.path, 'containerd'));
    cleanups.push(() => containerd.stop());
    const hosts = [...targets.values()].map((t) => t.host);
    await mkdir(join(scratch.path, 'docker', 'config'), { recursive: true });
    ctx = {
      scratch,
      targets,
      containerd,
      podmanEnv: await containersSandbox(join(scratch.path, 'podman'), hosts),
      buildahEnv: await containersSandbox(join(scratch.path, 'buildah'), hosts),
      dockerEnv: { HOME: join(scratch.path, 'docker'), DOCKER_CONFIG: join(scratch.path, 'docker', 'config') },
      image: await buildUmociImage(join(scratch.path, 'umoci')),
      multi: await buildMultiLayout(join(scratch.path, 'multi')),
    };
  });
  after(async () => {
    ctx = undefined;
    const failures: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((e: unknown) => failures.push(e));
    if (failures.length > 0) throw new AggregateError(failures, 'clean-up failed');
  });

  for (const mode of MODES) {
    describe(mode, () => {
      for (const client of IMAGE_CLIENTS) {
        it(`${client.name} pushes an image and pulls it back with the same manifest and config digests`, async () => {
          const t = target(mode);
          const repo = `${t.ns}/${client.name}-image`;
          const since = t.access.length;
          const pushed = await client.push(t, repo);
          const held = await registryManifest(t, repo, 'v1');
          assert.equal(held.digest, pushed.digest, `Berth holds what ${client.name} pushed`);
          assert.equal(held.manifest.config?.digest, pushed.config);
          const pulled = await client.pull(t, repo, 'pull');
          assert.deepEqual(pulled, pushed);

          const manifestPut = (e: AccessEntry) => e.method === 'PUT' && e.url.includes('/manifests/') && e.status === 201;
          const uploads = (await requestsFor(t, repo, since, manifestPut)).filter((e) => e.url.includes('/blobs/uploads/'));
          const patches = uploads.filter((e) => e.method === 'PATCH' && e.status === 202);
          const puts = uploads.filter((e) => e.method === 'PUT' && e.status === 201);
          assert.ok(puts.length > 0, `${client.name} finished uploads with PUT`);
          if (client.uploadsWith === 'PATCH') {
            assert.ok(patches.length > 0 && patches.every((p) => p.bytesIn > 0), `${client.name} sends bytes in PATCH`);
            assert.ok(
              puts.every((p) => p.bytesIn === 0),
              `${client.name} closes with an empty PUT`,
            );
          } else {
            assert.equal(patches.length, 0, 'ctr sends no PATCH');
            assert.ok(
              puts.some((p) => p.bytesIn === c().image.layer.size),
              `ctr streamed the ${c().image.layer.size}-byte layer in one PUT: ${JSON.stringify(puts)}`,
            );
          }
        });
      }

      it('podman and buildah pull what ctr pushed, umoci unpacks it, docker inspects a Docker-format image', async () => {
        const t = target(mode);
        const repo = `${t.ns}/cross`;
        const pushed = await ctrClient.push(t, repo);
        for (const client of [podmanClient, buildahClient])
          assert.deepEqual(await client.pull(t, repo, 'cross'), pushed, `${client.name} pulls what ctr pushed`);
        // umoci reads what podman writes back out of its store: the file is there, byte for byte.
        const out = join(c().scratch.path, `umoci-out-${slug(mode)}`);
        await podman([...podmanStore(mode, 'cross'), 'push', `${t.host}/${repo}:v1`, `oci:${out}:back`]);
        await runTool('umoci', ['unpack', '--rootless', '--image', `${out}:back`, join(out, 'bundle')]);
        assert.equal(await readFile(join(out, 'bundle', 'rootfs', 'hello.txt'), 'utf8'), 'hello from umoci\n');

        const digest = await ctrPushDockerImage(t, repo, 'docker', ctrNs(mode, 'cross'));
        await ensureLogin('docker', t);
        const inspected = JSON.parse((await docker(['manifest', 'inspect', '--insecure', '-v', `${t.host}/${repo}:docker`])).stdout) as {
          Descriptor: { digest: string; mediaType: string };
        };
        assert.deepEqual([inspected.Descriptor.digest, inspected.Descriptor.mediaType], [digest, DOCKER_MANIFEST]);
      });

      for (const maker of INDEX_MAKERS) {
        it(`${maker.name} pushes a two-platform index that docker and podman read back`, async () => {
          const t = target(mode);
          const repo = `${t.ns}/${maker.name}-multi`;
          const reported = await maker.pushIndex(t, repo);
          const held = await registryManifest(t, repo, 'v1');
          assert.equal(held.digest, reported, `Berth holds the index ${maker.name} reported`);
          const expected = [c().multi.amd64, c().multi.arm64].map((d) => [d.digest, d.platform?.architecture]);
          assert.deepEqual(
            held.manifest.manifests?.map((m) => [m.digest, m.platform?.architecture]),
            expected,
          );
          for (const reader of INDEX_READERS) {
            const got = await reader.read(t, repo);
            assert.deepEqual(
              got.manifests?.map((m) => [m.digest, m.platform?.architecture]),
              expected,
              `${reader.name} reads ${maker.name}'s index`,
            );
          }
          // Each platform's manifest resolves in the repository the index was pushed to.
          for (const [digest] of expected) assert.equal((await registryManifest(t, repo, digest ?? '')).digest, digest);
        });
      }

      it('ctr pushes an artifact whose subject is an image; the referrers API lists it and ctr fetches it back', async () => {
        const t = target(mode);
        const repo = `${t.ns}/artifact`;
        const ns = ctrNs(mode, 'artifact');
        await ctr(ns, ['images', 'import', '--no-unpack', '--base-name', 'multi', c().multi.tar]);
        for (const [from, to] of [
          ['amd64', 'img'],
          ['sig', 'sig'],
        ] as const) {
          await ctr(ns, ['images', 'tag', '--force', `multi:${from}`, `${t.host}/${repo}:${to}`]);
          await ctr(ns, ['images', 'push', '--plain-http', ...ctrCreds(t), `${t.host}/${repo}:${to}`]);
        }
        const { artifact, amd64 } = c().multi;
        assert.equal((await registryManifest(t, repo, 'sig')).digest, artifact.digest);
        const res = await fetch(`${t.berth.url}/v2/${repo}/referrers/${amd64.digest}`, { headers: await tokenFor(t, repo, 'pull') });
        assert.equal(res.status, 200);
        const referrers = (await res.json()) as { manifests: Array<{ digest: string; artifactType?: string }> };
        assert.deepEqual(
          referrers.manifests.map((m) => [m.digest, m.artifactType]),
          [[artifact.digest, 'application/vnd.example.signature']],
        );
        const fresh = ctrNs(mode, 'artifact-fetch');
        await ctr(fresh, ['content', 'fetch', '--plain-http', ...ctrCreds(t), `${t.host}/${repo}:sig`]);
        const fetched = (await ctr(fresh, ['content', 'get', artifact.digest])).bytes;
        assert.deepEqual(fetched, await readFile(join(c().multi.layout.dir, 'blobs', 'sha256', artifact.digest.slice(7))));
        assert.equal(parseManifest(fetched.toString('utf8')).subject?.digest, amd64.digest);
      });

      it('ctr resumes a partly fetched layer with a Range request and Berth answers 206 with the rest', async () => {
        const t = target(mode);
        const repo = `${t.ns}/resume`;
        // A fresh layer that containerd's content store has never seen.
        const layout = await new OciLayout(join(c().scratch.path, `resume-${slug(mode)}`)).init();
        const image = await layout.addImage([1_200_000]);
        await seedLayoutImage(t, layout, image, repo, 'v1');
        const manifest = parseManifest(await readFile(join(layout.dir, 'blobs', 'sha256', image.digest.slice(7)), 'utf8'));
        const layer = manifest.layers?.[0];
        assert.ok(layer);
        const bytes = await readFile(join(layout.dir, 'blobs', 'sha256', layer.digest.slice(7)));
        const half = Math.floor(bytes.length / 2);
        const ns = ctrNs(mode, 'resume');
        // An ingest under the ref containerd's fetcher uses for this layer, cut off halfway.
        await runToolExpectingFailure(
          'ctr',
          ctrArgs(ns, ['content', 'ingest', '--expected-size', String(layer.size), '--expected-digest', layer.digest, `layer-${layer.digest}`]),
          {
            input: bytes.subarray(0, half),
            env: ctrEnv(),
          },
        );
        const since = t.access.length;
        await ctr(ns, ['content', 'fetch', '--plain-http', ...ctrCreds(t), `${t.host}/${repo}:v1`]);
        const layerGet = (e: AccessEntry) => e.method === 'GET' && e.url.endsWith(layer.digest);
        const gets = (await requestsFor(t, repo, since, layerGet)).filter(layerGet);
        assert.deepEqual(
          gets.map((g) => [g.status, g.bytesOut]),
          [[206, bytes.length - half]],
        );
        const stored = (await ctr(ns, ['content', 'get', layer.digest])).bytes;
        assert.equal(`sha256:${createHash('sha256').update(stored).digest('hex')}`, layer.digest);
      });
    });
  }

  describe('auth on: logins and refusals', () => {
    it('podman, buildah and docker log in into their own sandboxes and use what they stored', async () => {
      const t = target('auth on');
      for (const client of ['podman', 'buildah', 'docker'] as const) await ensureLogin(client, t);
      const files = [c().podmanEnv.REGISTRY_AUTH_FILE ?? '', c().buildahEnv.REGISTRY_AUTH_FILE ?? '', join(c().dockerEnv.DOCKER_CONFIG ?? '', 'config.json')];
      for (const file of files) {
        const saved = JSON.parse(await readFile(file, 'utf8')) as { auths?: Record<string, unknown> };
        assert.ok(saved.auths?.[t.host], `${file} holds credentials for ${t.host}`);
      }
    });

    it('a wrong password is refused at login', async () => {
      const t = target('auth on');
      const env = await containersSandbox(join(c().scratch.path, 'podman-wrong'), [t.host]);
      const err = await runToolExpectingFailure('podman', ['login', '--tls-verify=false', '-u', 'alice', '--password-stdin', t.host], {
        env,
        input: 'not-the-password',
      });
      assert.match(err.stderr, /401|unauthorized|invalid username\/password/i);
    });

    it('anonymous ctr cannot push, and alice cannot push outside her namespace', async () => {
      const t = target('auth on');
      const ns = ctrNs('auth on', 'refused');
      await ctr(ns, ['images', 'import', '--no-unpack', '--base-name', 'umoci', c().image.tar]);
      await ctr(ns, ['images', 'tag', '--force', `umoci:${c().image.tag}`, `${t.host}/alice/anon:v1`]);
      const anon = await runToolExpectingFailure('ctr', ctrArgs(ns, ['images', 'push', '--plain-http', `${t.host}/alice/anon:v1`]), { env: ctrEnv() });
      assert.match(anon.stderr, /insufficient_scope|unauthorized|401/i);
      await ctr(ns, ['images', 'tag', '--force', `umoci:${c().image.tag}`, `${t.host}/bob/app:v1`]);
      const other = await runToolExpectingFailure('ctr', ctrArgs(ns, ['images', 'push', '--plain-http', ...ctrCreds(t), `${t.host}/bob/app:v1`]), {
        env: ctrEnv(),
      });
      assert.match(other.stderr, /denied|forbidden|403|insufficient_scope/i);
      const res = await fetch(`${t.berth.url}/v2/bob/app/manifests/v1`, { headers: await tokenFor(t, 'bob/app', 'pull') });
      assert.notEqual(res.status, 200);
    });

    it('after docker and podman log out, their pulls are refused', async () => {
      const t = target('auth on');
      const repo = `${t.ns}/logout`;
      await ctrPushDockerImage(t, repo, 'v1', ctrNs('auth on', 'logout'));
      const dockerOnly = { HOME: join(c().scratch.path, 'docker-logout'), DOCKER_CONFIG: join(c().scratch.path, 'docker-logout', 'config') };
      await mkdir(dockerOnly.DOCKER_CONFIG, { recursive: true });
      await runTool('docker', ['login', '-u', 'alice', '--password-stdin', t.host], { env: dockerOnly, input: PASSWORD });
      await runTool('docker', ['manifest', 'inspect', '--insecure', `${t.host}/${repo}:v1`], { env: dockerOnly });
      await runTool('docker', ['logout', t.host], { env: dockerOnly });
      const refused = await runToolExpectingFailure('docker', ['manifest', 'inspect', '--insecure', `${t.host}/${repo}:v1`], { env: dockerOnly });
      assert.match(refused.stderr, /unauthorized|denied|401|403/i);

      const env = await containersSandbox(join(c().scratch.path, 'podman-logout'), [t.host]);
      const store = storageFlags(join(c().scratch.path, 'podman-logout', 'store'), join(c().scratch.path, 'rr', 'logout'));
      await runTool('podman', ['login', '--tls-verify=false', '-u', 'alice', '--password-stdin', t.host], { env, input: PASSWORD });
      await runTool('podman', [...store, 'pull', '-q', '--tls-verify=false', `docker://${t.host}/${repo}:v1`], { env });
      await runTool('podman', ['logout', t.host], { env });
      const denied = await runToolExpectingFailure('podman', [...store, 'pull', '-q', '--tls-verify=false', `docker://${t.host}/${repo}:v1`], { env });
      assert.match(denied.stderr, /unauthorized|authentication required|denied|401|403/i);
    });
  });
});
