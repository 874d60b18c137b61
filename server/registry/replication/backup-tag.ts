// The tag a replaced target digest is kept under (conflict: backup), from the rule's template.
import { isValidTag } from '../references.js';

const PLACEHOLDER = /\{([^{}]*)\}/g;
const KNOWN = new Set(['tag', 'digest', 'digest12']);
// What the template is tried with at start-up: a short tag and a sha256 digest.
const SAMPLE_TAG = 'v1';
const SAMPLE_DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

function fill(template: string, tag: string, digest: string): string {
  const hex = digest.slice(digest.indexOf(':') + 1);
  return template.replace(PLACEHOLDER, (_, name: string) => (name === 'tag' ? tag : name === 'digest12' ? hex.slice(0, 12) : hex));
}

/** The template filled in; undefined when the result is not a valid tag (a long tag plus the suffix passes 128 characters). */
export function renderBackupTag(template: string, tag: string, digest: string): string | undefined {
  const rendered = fill(template, tag, digest);
  return isValidTag(rendered) ? rendered : undefined;
}

/** What is wrong with a template, or undefined. */
export function backupTemplateProblem(template: string): string | undefined {
  for (const [, name] of template.matchAll(PLACEHOLDER)) {
    if (!KNOWN.has(name as string)) return `unknown placeholder {${name}}: use {tag}, {digest12} or {digest}`;
  }
  // Without {tag}, the old digests of two tags would take the same backup tag, the second replacing the first.
  if (!template.includes('{tag}')) return 'must contain {tag}, so each tag gets its own backup';
  const sample = fill(template, SAMPLE_TAG, SAMPLE_DIGEST);
  if (sample === SAMPLE_TAG) return 'must add something to {tag}, or the backup would be the tag itself';
  if (!isValidTag(sample))
    return `gives invalid tags (${JSON.stringify(SAMPLE_TAG)} would become ${JSON.stringify(sample)}): a tag is at most 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'`;
  return undefined;
}
