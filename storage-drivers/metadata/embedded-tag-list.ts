import { key, lastPart, under, type Db } from './embedded-keys.js';

/**
 * A repository's tags in byte order, kept in segments so a full listing is a few reads rather than a
 * walk over every tag key, and a new tag rewrites one segment rather than the whole list (one value
 * of 100,000 tags was 1.2 MB rewritten on every push into the repository).
 *
 *   tagLists   repo \0 first         → string[]  (a segment: the tags from `first` up to the next
 *                                                 segment's first; the lowest segment's key is `repo \0`)
 *   tagLists   repo                  → string[]  (the whole list as one value: stores written before
 *                                                 segments; read as one segment, split on its next change)
 *
 * A segment is split in two when it passes `segmentMax` tags and removed when it empties. Segments
 * left small by deletes are not merged: a listing reads a few more values, nothing else is affected.
 * Every method runs inside the store's transactions (reads in a read, changes in a write).
 */
export class SegmentedTagList {
  constructor(
    private readonly lists: Db<string[]>,
    private readonly tags: Db<string>,
    private readonly segmentMax: number,
  ) {}

  /** Every tag of the repository after `last` (all when undefined), in byte order. */
  list(repo: string, last?: string): string[] {
    const range = under(repo);
    const from = last === undefined ? undefined : this.keyHolding(repo, last);
    const all: string[] = [];
    for (const { value } of this.lists.getRange({ start: from ?? range.start, end: range.end })) all.push(...value);
    if (all.length === 0 && from === undefined) all.push(...(this.lists.get(key(repo)) ?? this.fromTagKeys(repo)));
    return last === undefined ? all : all.slice(firstAfter(all, last));
  }

  /** Keeps the list in step with the tag keys, after a change to them in the same transaction. */
  change(repo: string, added: string[], removed: string[]): void {
    const loaded = new Map<string, Segment>();
    const segmentFor = (tag: string): Segment => {
      const at = this.keyHolding(repo, tag);
      const first = at === undefined ? '' : lastPart(at, under(repo).start.length);
      let segment = loaded.get(first);
      if (segment === undefined) {
        segment = at === undefined ? this.unsegmented(repo, added) : { first, tags: this.lists.get(at) ?? [] };
        loaded.set(first, segment);
      }
      return segment;
    };
    const changed = new Set<Segment>();
    for (const tag of removed) {
      const segment = segmentFor(tag);
      const i = firstAfter(segment.tags, tag) - 1;
      if (i >= 0 && segment.tags[i] === tag) {
        segment.tags.splice(i, 1);
        changed.add(segment);
      }
    }
    for (const tag of added) {
      const segment = segmentFor(tag);
      const i = firstAfter(segment.tags, tag);
      if (segment.tags[i - 1] !== tag) {
        segment.tags.splice(i, 0, tag);
        changed.add(segment);
      }
    }
    for (const segment of changed) this.store(repo, segment);
  }

  /** The key of the segment `tag` belongs in: the last whose first sorts at or before it. */
  private keyHolding(repo: string, tag: string): Buffer | undefined {
    // Reverse from the tag's own key down to, not including, the bare `repo` (the old whole-list key).
    for (const k of this.lists.getKeys({ start: key(repo, tag), end: key(repo), reverse: true, limit: 1 })) return k;
    return undefined;
  }

  /** A repository without segments yet: its old whole-list value, or its tag keys (less those being added). */
  private unsegmented(repo: string, added: string[]): Segment {
    const legacy = this.lists.get(key(repo));
    if (legacy !== undefined) return { first: '', tags: legacy, legacy: true };
    // The lowest segment emptied and went while higher ones remain: it starts again empty.
    for (const _ of this.lists.getKeys({ ...under(repo), limit: 1 })) return { first: '', tags: [] };
    const adding = new Set(added);
    return { first: '', tags: this.fromTagKeys(repo).filter((t) => !adding.has(t)) };
  }

  private store(repo: string, segment: Segment): void {
    if (segment.legacy === true) {
      // The whole-list value becomes segments keyed the new way.
      this.lists.remove(key(repo));
      segment.legacy = false;
      segment.first = '';
    }
    const at = key(repo, segment.first);
    if (segment.tags.length === 0) {
      this.lists.remove(at);
      return;
    }
    if (segment.tags.length <= this.segmentMax) {
      this.lists.put(at, segment.tags);
      return;
    }
    // Split into pieces of half the maximum: the first keeps this key, the others are keyed by their
    // first tag, so every tag still lands in the segment with the greatest first at or below it.
    const size = Math.max(1, Math.floor(this.segmentMax / 2));
    for (let start = 0; start < segment.tags.length; start += size) {
      const piece = segment.tags.slice(start, start + size);
      this.lists.put(start === 0 ? at : key(repo, piece[0] as string), piece);
    }
  }

  /** Stores written before any tag list existed: the tag keys are the list. */
  private fromTagKeys(repo: string): string[] {
    const range = under(repo);
    return Array.from(this.tags.getKeys(range), (k) => lastPart(k, range.start.length));
  }
}

interface Segment {
  first: string;
  tags: string[];
  legacy?: boolean;
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Index of the first entry of the byte-ordered `list` that sorts after `value`. */
export function firstAfter(list: string[], value: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (byteCompare(list[mid] as string, value) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
