// Content every target gets before the timed rows: a small image, a repository with 1,000 tags, an
// image for manifest PUTs, the fan-out image, and one blob per pull size. Pushed identically everywhere.
import { randomBytes } from 'node:crypto';
import type { Agent } from 'node:http';
import { imageConfig, imageManifest, makeBlob, smallBlob, type SmallBlob, type SyntheticBlob } from './blobs.js';
import { pool, pushBlob, pushSmall, putManifest } from './client.js';

export const REPO = {
  small: 'bench/small',
  tags: 'bench/tags',
  put: 'bench/put',
  fanout: 'bench/fanout',
  pull: 'bench/pull',
} as const;

export interface Fixtures {
  smallLayer: SmallBlob;
  smallConfig: SmallBlob;
  smallManifest: SmallBlob;
  putConfig: SmallBlob;
  putManifest: SmallBlob;
  tagCount: number;
  fanoutLayers: SyntheticBlob[];
  fanoutConfig: SmallBlob;
  fanoutManifest: SmallBlob;
  pullBlobs: Map<number, SyntheticBlob>;
}

/** Builds the fixture content once; the same bytes go to every target. */
export function makeFixtures(options: { tagCount: number; fanoutLayerSizes: number[]; pullSizes: number[] }): Fixtures {
  const smallLayer = smallBlob(randomBytes(4096));
  const config = imageConfig('small');
  const putConfig = imageConfig('put');
  const fanoutConfig = imageConfig('fanout');
  const fanoutLayers = options.fanoutLayerSizes.map((size) => makeBlob(size));
  return {
    smallLayer,
    smallConfig: config,
    smallManifest: imageManifest(config, [smallLayer]),
    putConfig,
    putManifest: imageManifest(putConfig, [smallLayer]),
    tagCount: options.tagCount,
    fanoutLayers,
    fanoutConfig,
    fanoutManifest: imageManifest(fanoutConfig, fanoutLayers),
    pullBlobs: new Map(options.pullSizes.map((size) => [size, makeBlob(size)])),
  };
}

export async function pushFixtures(agent: Agent, base: string, f: Fixtures): Promise<void> {
  for (const repo of [REPO.small, REPO.tags, REPO.put]) {
    await pushSmall(agent, base, repo, f.smallLayer);
  }
  await pushSmall(agent, base, REPO.small, f.smallConfig);
  await pushSmall(agent, base, REPO.tags, f.smallConfig);
  await pushSmall(agent, base, REPO.put, f.putConfig);
  await putManifest(agent, base, REPO.small, 'v1', f.smallManifest);
  const tags = Array.from({ length: f.tagCount }, (_, i) => `t${String(i).padStart(4, '0')}`);
  await pool(tags, 8, (tag) => putManifest(agent, base, REPO.tags, tag, f.smallManifest));

  await pushSmall(agent, base, REPO.fanout, f.fanoutConfig);
  for (const layer of f.fanoutLayers) await pushBlob(agent, base, REPO.fanout, layer, 'monolithic', 0);
  await putManifest(agent, base, REPO.fanout, 'latest', f.fanoutManifest);

  for (const blob of f.pullBlobs.values()) await pushBlob(agent, base, REPO.pull, blob, 'monolithic', 0);
}
