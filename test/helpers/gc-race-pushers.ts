// The race harness's pushers and the model of what the registry must hold when they are done.
// Each pusher owns a few repositories and draws its operations from its own seeded generator; a
// round's choices read other pushers' state only as it stood at the start of the round, so the model
// (tags, manifests, what is gone) is the same on every run, whatever GC does in between. GC can only
// change how many attempts a push needs, and the harness insists every push gets through.
import { blob, imageManifest, OCI_INDEX, OCI_MANIFEST, type Blob } from './oci.js';
import { mixSeed, Prng } from './prng.js';
import type { RaceClient } from './gc-race-client.js';

type Digest = string;

export interface Image {
  config: Blob;
  layers: Blob[];
  manifest: Blob;
}

export type LiveManifest =
  { kind: 'image'; image: Image } | { kind: 'index'; index: Blob; children: Image[] } | { kind: 'referrer'; image: Image; subject: Digest };

export interface RepoModel {
  readonly name: string;
  readonly tags: Map<string, Digest>;
  readonly live: Map<Digest, LiveManifest>;
  /** Every manifest ever pushed here: those not live must answer 404 at the end. */
  readonly pushed: Set<Digest>;
  /**
   * Subjects deleted while they had referrers: GC deletes those referrers some time later, so the
   * subject is never pushed here again (whether its referrers survived would depend on timing).
   */
  readonly burnt: Set<Digest>;
}

/** A blob nothing may reference any more, and the repository that linked it: what (a) and (b) reuse. */
export interface Orphan {
  blob: Blob;
  repo: string;
}

export type RaceOp =
  | 'push-new'
  | 'repush-old'
  | 'mount-orphan'
  | 'orphan-upload'
  | 'move-tag'
  | 'delete-tag'
  | 'delete-manifest'
  | 'push-index'
  | 'delete-index'
  | 'push-referrer';

const WEIGHTS: Record<RaceOp, number> = {
  'push-new': 3,
  'repush-old': 4,
  'mount-orphan': 3,
  'orphan-upload': 1,
  'move-tag': 2,
  'delete-tag': 1,
  'delete-manifest': 4,
  'push-index': 1,
  'delete-index': 1,
  'push-referrer': 1,
};

const TAGS = ['t0', 't1', 't2', 't3'];
const ARTIFACT_TYPE = 'application/vnd.example.race-signature';

export interface PusherOptions {
  seed: number;
  index: number;
  repos: number;
  maxAttempts: number;
}

export class Pusher {
  readonly repos: RepoModel[];
  readonly ops: Record<RaceOp, number> = {
    'push-new': 0,
    'repush-old': 0,
    'mount-orphan': 0,
    'orphan-upload': 0,
    'move-tag': 0,
    'delete-tag': 0,
    'delete-manifest': 0,
    'push-index': 0,
    'delete-index': 0,
    'push-referrer': 0,
  };
  private readonly prng: Prng;
  /** Images whose manifest was deleted from a repository (their blobs may be old orphans by now). */
  private readonly deleted: { image: Image; repo: string }[] = [];
  /** Blobs uploaded without a manifest, as a failed CI job leaves them. */
  private readonly uploadedOnly: Orphan[] = [];
  private made = 0;

  constructor(
    private readonly client: RaceClient,
    private readonly options: PusherOptions,
  ) {
    this.prng = new Prng(mixSeed(options.seed, options.index));
    this.repos = Array.from({ length: options.repos }, (_, i) => ({
      name: `race/p${options.index}-r${i}`,
      tags: new Map(),
      live: new Map(),
      pushed: new Set(),
      burnt: new Set(),
    }));
  }

  /** What other pushers may mount: blobs of this pusher's deleted images and its uploads nobody referenced. */
  orphans(): Orphan[] {
    const list: Orphan[] = [...this.uploadedOnly];
    for (const { image, repo } of this.deleted) for (const b of [image.config, ...image.layers]) list.push({ blob: b, repo });
    return list;
  }

  /** `count` operations, one after the other; `others` are the other pushers' orphans at the start of the round. */
  async round(count: number, others: Orphan[]): Promise<void> {
    for (let i = 0; i < count; i++) await this.step(this.prng.weighted(WEIGHTS), others);
  }

  private async step(op: RaceOp, others: Orphan[]): Promise<void> {
    const repo = this.prng.pick(this.repos);
    const tag = this.prng.pick(TAGS);
    switch (op) {
      case 'push-new':
        return this.count(op, this.pushImage(repo, this.freshImage(repo), tag));
      case 'repush-old': {
        if (this.deleted.length === 0) return this.step('push-new', others);
        const old = this.prng.pick(this.deleted);
        // Mostly where it was (a CI job pushing app:tag again), so the HEADs meet its old orphans.
        const home = this.repos.find((r) => r.name === old.repo) as RepoModel;
        const target = this.prng.chance(0.75) ? home : repo;
        if (target.burnt.has(old.image.manifest.digest)) return this.step('push-new', others);
        // Pushed again whole: HEADs find what GC has not taken (skip), the rest is uploaded.
        return this.count(op, this.pushImage(target, old.image, tag));
      }
      case 'mount-orphan': {
        const sources = others.filter((o) => o.repo !== repo.name);
        if (sources.length === 0) return this.step('push-new', others);
        const source = this.prng.pick(sources);
        const image = this.image([source.blob, this.freshBlob()]);
        return this.count(op, this.pushImage(repo, image, tag, new Map([[source.blob.digest, source.repo]])));
      }
      case 'orphan-upload': {
        const blobs = [this.freshBlob(), this.freshBlob()];
        await this.client.withRetries(`upload to ${repo.name}`, this.options.maxAttempts, async () => {
          await this.client.ensureBlobs(repo.name, blobs);
        });
        for (const b of blobs) this.uploadedOnly.push({ blob: b, repo: repo.name });
        this.ops[op]++;
        return;
      }
      case 'move-tag': {
        const targets = [...repo.live.entries()].filter(([, m]) => m.kind !== 'referrer');
        if (targets.length === 0) return this.step('push-new', others);
        const [digest, target] = this.prng.pick(targets);
        if (target.kind === 'index') await this.pushIndex(repo, target.children, tag);
        else await this.pushImage(repo, target.image, tag);
        if (repo.tags.get(tag) !== digest) throw new Error(`model: ${repo.name}:${tag} should be ${digest}`);
        this.ops[op]++;
        return;
      }
      case 'delete-tag': {
        const tags = [...repo.tags.keys()];
        if (tags.length === 0) return this.step('push-new', others);
        const victim = this.prng.pick(tags);
        await this.client.deleteManifest(repo.name, victim);
        repo.tags.delete(victim);
        this.ops[op]++;
        return;
      }
      case 'delete-manifest': {
        // Never an index's child while the index lives: the index would point at nothing.
        const children = new Set([...repo.live.values()].flatMap((m) => (m.kind === 'index' ? m.children.map((c) => c.manifest.digest) : [])));
        const victims = [...repo.live.entries()].filter(([d, m]) => m.kind !== 'index' && !children.has(d));
        if (victims.length === 0) return this.step('push-new', others);
        const [digest] = this.prng.pick(victims);
        await this.deleteManifest(repo, digest);
        this.ops[op]++;
        return;
      }
      case 'push-index': {
        const old = this.deleted.filter((d) => !repo.burnt.has(d.image.manifest.digest));
        const first = old.length > 0 && this.prng.chance(0.5) ? this.prng.pick(old).image : this.freshImage(repo);
        return this.count(op, this.pushIndex(repo, [first, this.freshImage(repo)], tag));
      }
      case 'delete-index': {
        const indexes = [...repo.live.entries()].filter(([, m]) => m.kind === 'index');
        if (indexes.length === 0) return this.step('push-index', others);
        await this.deleteManifest(repo, this.prng.pick(indexes)[0]);
        this.ops[op]++;
        return;
      }
      case 'push-referrer': {
        const subjects = [...repo.live.values()].filter((m): m is LiveManifest & { kind: 'image' } => m.kind === 'image');
        if (subjects.length === 0) return this.step('push-new', others);
        const subject = this.prng.pick(subjects).image.manifest;
        const image = this.image([this.freshBlob()], {
          artifactType: ARTIFACT_TYPE,
          subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
        });
        await this.client.withRetries(`referrer in ${repo.name}`, this.options.maxAttempts, async () => {
          await this.client.ensureBlobs(repo.name, [image.config, ...image.layers]);
          await this.client.putManifest(repo.name, image.manifest.digest, image.manifest, OCI_MANIFEST);
        });
        repo.live.set(image.manifest.digest, { kind: 'referrer', image, subject: subject.digest });
        repo.pushed.add(image.manifest.digest);
        this.ops[op]++;
        return;
      }
    }
  }

  private async count(op: RaceOp, work: Promise<void>): Promise<void> {
    await work;
    this.ops[op]++;
  }

  private freshBlob(): Blob {
    return blob(this.prng.bytes(this.prng.between(64, 2048)));
  }

  private image(layers: Blob[], extra: Record<string, unknown> = {}): Image {
    const config = blob(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, race: `p${this.options.index}-${this.made++}` }),
    );
    return { config, layers, manifest: imageManifest(config, layers, extra) };
  }

  /** New layers, sometimes with an old upload of the same repository nobody referenced (a HEAD finds it, or not). */
  private freshImage(repo: RepoModel): Image {
    const layers = Array.from({ length: this.prng.between(1, 3) }, () => this.freshBlob());
    const leftovers = this.uploadedOnly.filter((o) => o.repo === repo.name);
    if (leftovers.length > 0 && this.prng.chance(0.5)) layers.push(this.prng.pick(leftovers).blob);
    return this.image(layers);
  }

  /** Config, layers (mounted where `mounts` says so on the first attempt), then the manifest under `tag` or its digest. */
  private async pushImage(repo: RepoModel, image: Image, tag: string | undefined, mounts = new Map<Digest, string>()): Promise<void> {
    const digest = image.manifest.digest;
    if (repo.burnt.has(digest)) throw new Error(`model: ${digest} may not be pushed to ${repo.name} again`);
    await this.client.withRetries(`push ${repo.name}:${tag ?? digest}`, this.options.maxAttempts, async (attempt) => {
      await this.client.ensureBlobs(repo.name, [image.config, ...image.layers], attempt === 1 ? mounts : undefined);
      await this.client.putManifest(repo.name, tag ?? digest, image.manifest, OCI_MANIFEST);
    });
    repo.live.set(digest, { kind: 'image', image });
    repo.pushed.add(digest);
    if (tag !== undefined) repo.tags.set(tag, digest);
  }

  /** The children by digest, then the index over them under `tag`. */
  private async pushIndex(repo: RepoModel, children: Image[], tag: string): Promise<void> {
    const index = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: children.map((c, i) => ({
          mediaType: OCI_MANIFEST,
          digest: c.manifest.digest,
          size: c.manifest.size,
          platform: { architecture: i === 0 ? 'amd64' : 'arm64', os: 'linux' },
        })),
      }),
    );
    await this.client.withRetries(`index ${repo.name}:${tag}`, this.options.maxAttempts, async () => {
      for (const child of children) {
        await this.client.ensureBlobs(repo.name, [child.config, ...child.layers]);
        await this.client.putManifest(repo.name, child.manifest.digest, child.manifest, OCI_MANIFEST);
      }
      await this.client.putManifest(repo.name, tag, index, OCI_INDEX);
    });
    for (const child of children) {
      repo.live.set(child.manifest.digest, { kind: 'image', image: child });
      repo.pushed.add(child.manifest.digest);
    }
    repo.live.set(index.digest, { kind: 'index', index, children });
    repo.pushed.add(index.digest);
    repo.tags.set(tag, index.digest);
  }

  /** DELETE by digest: its tags go with it, and its referrers are GC's to delete (the spec's rule). */
  private async deleteManifest(repo: RepoModel, digest: Digest): Promise<void> {
    const entry = repo.live.get(digest);
    if (!entry) throw new Error(`model: ${digest} is not live in ${repo.name}`);
    await this.client.deleteManifest(repo.name, digest);
    repo.live.delete(digest);
    for (const [tag, d] of repo.tags) if (d === digest) repo.tags.delete(tag);
    const referrers = [...repo.live.entries()].filter(([, m]) => m.kind === 'referrer' && m.subject === digest).map(([d]) => d);
    if (referrers.length > 0) repo.burnt.add(digest);
    for (const d of referrers) repo.live.delete(d);
    if (entry.kind === 'image') this.deleted.push({ image: entry.image, repo: repo.name });
  }
}
