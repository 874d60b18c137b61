// Regenerates the key table in docs/configuration.md from the config schema (run after `npm run build`).
// Usage: node scripts/config-docs.mjs [--check]
import { readFileSync, writeFileSync } from 'node:fs';

const { withGeneratedTable } = await import(new URL('../dist/server/config-docs.js', import.meta.url).href);
const file = new URL('../docs/configuration.md', import.meta.url);
const current = readFileSync(file, 'utf8');
const next = withGeneratedTable(current);
if (process.argv.includes('--check')) {
  if (next !== current) {
    console.error('docs/configuration.md is stale: run `npm run build && node scripts/config-docs.mjs`');
    process.exit(1);
  }
} else if (next !== current) {
  writeFileSync(file, next);
  console.log('docs/configuration.md updated');
}
