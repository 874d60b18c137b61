#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled TypeScript under dist/.
import('../dist/server/cli.js')
  .then((m) => m.main(process.argv.slice(2)))
  .catch((err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
