import type { Digest } from '../../../storage-drivers/metadata/types.js';
import { OciError } from '../../../errors/oci-error.js';

/** What was refused: moving a tag, deleting it, or deleting a manifest an immutable tag points at. */
export const IMMUTABLE_OPERATIONS = ['overwrite', 'delete_tag', 'delete_manifest'] as const;
export type ImmutableOperation = (typeof IMMUTABLE_OPERATIONS)[number];

export interface ImmutableRefusalDetail {
  operation: ImmutableOperation;
  repository: string;
  tag: string;
  /** Where the immutable tag points. */
  digest: Digest;
  rule: string;
}

function message(r: ImmutableRefusalDetail): string {
  const head = `tag ${r.tag} in ${r.repository} is immutable (rule ${r.rule})`;
  switch (r.operation) {
    case 'overwrite':
      return `${head}: it points at ${r.digest}; push under a new tag`;
    case 'delete_tag':
      return `${head}: it points at ${r.digest} and cannot be deleted`;
    case 'delete_manifest':
      return `manifest ${r.digest} in ${r.repository} cannot be deleted: ${head} and points at it`;
  }
}

/**
 * 403 DENIED for a change an immutable tag forbids. Not a matter of credentials, but DENIED is the
 * spec's code for "this request is not allowed", and clients show its message as it is.
 */
export class ImmutableTagRefusal extends OciError {
  constructor(readonly refusal: ImmutableRefusalDetail) {
    super('DENIED', message(refusal), { tag: refusal.tag, digest: refusal.digest, rule: refusal.rule, operation: refusal.operation });
  }
}
