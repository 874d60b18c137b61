import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { it } from 'node:test';
import { STORAGE_PAIRS } from '../helpers/matrix.js';

it('has one test file per storage × metadata pair, so no pair goes untested', () => {
  assert.equal(STORAGE_PAIRS.length, 6);
  const missing = STORAGE_PAIRS.filter((p) => !existsSync(new URL(`./${p.id}.test.js`, import.meta.url)));
  assert.deepEqual(
    missing.map((p) => `test/api/${p.id}.test.ts`),
    [],
  );
});
