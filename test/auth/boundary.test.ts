// auth/ is usable without the HTTP server: it may throw OciErrors (errors/) and use storage drivers,
// never import from server/. Checked on the compiled modules, which are what runs.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

it('no module under auth/ imports from server/', async () => {
  const dir = fileURLToPath(new URL('../../auth/', import.meta.url));
  const offenders: string[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.js'))) {
    const text = await readFile(`${dir}${file}`, 'utf8');
    for (const m of text.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]/g)) {
      const target = m[1] ?? m[2] ?? '';
      if (target.startsWith('../server/')) offenders.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(offenders, []);
});
