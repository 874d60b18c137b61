// Where `berth retention` (a process of its own, with no server around it) gets pull statistics and
// immutable-tag rules. Until those features are wired here, pulls are unknown: a run refuses a
// policy with a pull rule rather than judge every tag "never pulled" and delete tags still in use.
import type { BerthConfig } from '../../config.js';
import type { MetadataStore } from '../../../storage-drivers/metadata/types.js';
import { NOTHING_IMMUTABLE, type IsImmutable, type PullsOf } from './evaluate.js';

export interface RetentionSources {
  /** Undefined: no pull statistics available in this process. */
  pullsOf?: PullsOf;
  isImmutable: IsImmutable;
}

export function commandRetentionSources(_config: BerthConfig, _metadata: MetadataStore): RetentionSources {
  return { isImmutable: NOTHING_IMMUTABLE };
}
