import type { MetadataStore } from '../../storage-drivers/metadata/types.js';

/** Reads a replication rule's state (a count) and tries to add one, `times` times; returns the wins. */
export async function advanceRuleState(store: MetadataStore, rule: string, times: number): Promise<number> {
  let wins = 0;
  for (let i = 0; i < times; i++) {
    const current = await store.replication.getRuleState(rule);
    const count = current === undefined ? 0 : Number(current.state);
    if (await store.replication.updateRuleState(rule, current?.revision ?? 0, String(count + 1))) wins++;
  }
  return wins;
}
