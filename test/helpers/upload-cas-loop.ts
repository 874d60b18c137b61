import type { MetadataStore } from '../../storage-drivers/metadata/types.js';

/** Reads the session and tries to advance revision and offset by one, `times` times; returns the wins. */
export async function advanceUpload(store: MetadataStore, id: string, times: number): Promise<number> {
  let wins = 0;
  for (let i = 0; i < times; i++) {
    const s = await store.getUpload(id);
    if (s === undefined) throw new Error(`upload ${id} is gone`);
    if (await store.updateUpload(id, s.revision, { ...s, revision: s.revision + 1, offset: s.offset + 1 })) wins++;
  }
  return wins;
}
