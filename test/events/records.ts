// Change records of every kind, as the stores log them, for the event tests.
import type { ChangeRecord, EventOrigin } from '../../storage-drivers/metadata/event-types.js';

export const D1 = `sha256:${'1'.repeat(64)}`;
export const D2 = `sha256:${'2'.repeat(64)}`;
export const D3 = `sha256:${'3'.repeat(64)}`;
export const AT = Date.UTC(2026, 11, 2, 10, 0, 0, 123);
export const IMAGE = 'application/vnd.oci.image.manifest.v1+json';
export const INDEX = 'application/vnd.oci.image.index.v1+json';

export const USER: EventOrigin = { actor: 'ci-bot', actorKind: 'robot', address: '10.0.0.7', requestId: 'req-1', userAgent: 'docker/27.0' };
export const RETENTION: EventOrigin = { actor: 'retention', actorKind: 'system', policy: 'ci-builds', reason: 'keep_last' };
export const GC: EventOrigin = { actor: 'gc', actorKind: 'system' };

type Kind = ChangeRecord['kind'];
/** The record type of one kind (blob_corrupt and blob_missing share a member of the union). */
type RecordOf<K extends Kind> = ChangeRecord extends infer R ? (R extends { kind: infer RK } ? (K extends RK ? R & { kind: K } : never) : never) : never;

let n = 0;
/** A record of `kind` with an id of its own; `fields` gives what the kind needs. */
export function record<K extends Kind>(
  kind: K,
  fields: Omit<RecordOf<K>, 'kind' | 'id' | 'at' | 'origin'> & { origin?: EventOrigin; id?: string },
): RecordOf<K> {
  const { origin, id, ...rest } = fields;
  return { kind, id: id ?? `rec${String(++n).padStart(4, '0')}`, at: AT, origin: origin ?? USER, ...rest } as unknown as RecordOf<K>;
}

export function manifestPut(fields: Partial<Omit<RecordOf<'manifest_put'>, 'kind'>> = {}): RecordOf<'manifest_put'> {
  return record('manifest_put', {
    repository: 'team/app',
    digest: D1,
    mediaType: IMAGE,
    size: 1234,
    tags: [],
    previous: [],
    repositoryCreated: false,
    ...fields,
  });
}
