import { configSchema } from './config.js';
import { configLeaves, type ConfigLeaf } from './config-leaves.js';

/**
 * The configuration reference table, generated from the schema so it lists exactly the keys Berth
 * accepts. Written into docs/configuration.md by `node scripts/config-docs.mjs`; a test fails when the
 * committed copy is stale.
 */

export const BEGIN_MARKER = '<!-- BEGIN GENERATED: config keys -->';
export const END_MARKER = '<!-- END GENERATED: config keys -->';

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function formatDefault(leaf: ConfigLeaf): string {
  if (leaf.defaultValue === undefined) return leaf.required ? '*(required in its section)*' : '';
  return `\`${JSON.stringify(leaf.defaultValue)}\``;
}

function formatType(leaf: ConfigLeaf): string {
  switch (leaf.kind) {
    case 'enum':
      return (leaf.enumValues ?? []).map((v) => `\`${v}\``).join(' \\| ');
    case 'json':
      return 'list/map (JSON in env)';
    default:
      return leaf.kind;
  }
}

export function configReferenceTable(): string {
  const rows = configLeaves(configSchema).map((leaf) =>
    [`\`${leaf.path.join('.')}\``, formatType(leaf), formatDefault(leaf), `\`${leaf.envName}\``, escapeCell(leaf.description ?? '')].join(' | '),
  );
  return ['| Key | Type | Default | Environment | Description |', '| --- | --- | --- | --- | --- |', ...rows.map((r) => `| ${r} |`)].join('\n');
}

/** Replaces the generated block of a document, keeping the hand-written text around it. */
export function withGeneratedTable(document: string): string {
  const begin = document.indexOf(BEGIN_MARKER);
  const end = document.indexOf(END_MARKER);
  if (begin === -1 || end === -1 || end < begin) throw new Error('generated-table markers not found');
  return `${document.slice(0, begin + BEGIN_MARKER.length)}\n${configReferenceTable()}\n${document.slice(end)}`;
}
