import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import { OciError } from '../../errors/oci-error.js';

/** One page of a list, and whether more follow it. */
export interface ListPage {
  items: string[];
  more: boolean;
}

/** NAME_UNKNOWN unless some manifest or blob has made `repo` exist. */
export async function assertRepositoryKnown(metadata: MetadataStore, repo: string): Promise<void> {
  if (!(await metadata.repositoryExists(repo))) throw new OciError('NAME_UNKNOWN', `repository ${repo} is not known to this registry`);
}

/** Repositories and their tags, as listed by the tags and catalog endpoints. */
export class RepositoryService {
  constructor(private readonly metadata: MetadataStore) {}

  /** `repo`'s tags in order, after `last`: all of them, or at most `n`. */
  async tags(repo: string, n: number | undefined, last: string | undefined): Promise<ListPage> {
    await assertRepositoryKnown(this.metadata, repo);
    if (n === undefined) return { items: await this.metadata.listTags(repo, { last }), more: false };
    // One more than asked for tells whether a next page exists.
    const page = n === 0 ? [] : await this.metadata.listTags(repo, { n: n + 1, last });
    return { items: page.slice(0, n), more: page.length > n };
  }

  /** At most `n` repository names in order, after `last`. */
  async catalog(n: number, last: string | undefined): Promise<ListPage> {
    const page = n === 0 ? [] : await this.metadata.listRepositories({ n: n + 1, last });
    return { items: page.slice(0, n), more: page.length > n };
  }
}
