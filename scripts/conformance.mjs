// Runs the OCI distribution-spec conformance suite v1.1.1 against a real `berth serve` on each setup
// CI must keep conformant: filesystem + embedded, S3 (s3rver) + Redis, and token auth on.
//
// Usage: node scripts/conformance.mjs [fs-embedded|s3-redis|auth ...]   (default: all three)
// Needs a build (npm run build), redis-server for s3-redis, and the suite at ../shared/conformance/
// beside the repository (override with CONFORMANCE_RUN_SH=/path/to/run.sh).
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const runSh = process.env.CONFORMANCE_RUN_SH ?? join(dirname(repo), 'shared', 'conformance', 'run.sh');
const helpers = join(repo, 'dist', 'test', 'helpers');

function die(message) {
  process.stderr.write(`conformance: ${message}\n`);
  process.exit(2);
}

if (!existsSync(runSh)) die(`the OCI conformance suite is missing: expected ${runSh} (the shared/ folder beside the repository, or set CONFORMANCE_RUN_SH)`);
if (!existsSync(join(helpers, 'berth-process.js'))) die('no build: run `npm run build` first');

const { startBerthProcess } = await import(join(helpers, 'berth-process.js'));
const { startRedisServer } = await import(join(helpers, 'redis-server.js'));
const { startS3rver } = await import(join(helpers, 's3rver.js'));
const { makeScratchDir } = await import(join(helpers, 'scratch.js'));

const USER = 'conformance';

const SETUPS = {
  'fs-embedded': async () => ({ config: {}, stop: async () => {} }),
  's3-redis': async () => {
    const redis = await startRedisServer();
    const s3 = await startS3rver().catch(async (err) => {
      await redis.stop();
      throw err;
    });
    return {
      config: { storage: { driver: 's3', s3: s3.config() }, metadata: { store: 'redis', redis: { url: redis.url } } },
      stop: async () => {
        await s3.stop();
        await redis.stop();
      },
    };
  },
  auth: async (dataDir) => {
    // The user is made as an operator would, with the CLI; the suite logs in through the token flow.
    const { stdout } = await promisify(execFile)(process.execPath, [join(repo, 'bin', 'berth.js'), 'user', 'add', USER], {
      env: { ...process.env, BERTH_DATA_DIR: dataDir },
    });
    const password = /password \(shown once\): (\S+)/.exec(stdout)?.[1];
    if (!password) throw new Error(`berth user add printed no password:\n${stdout}`);
    return { config: { auth: { enabled: true, userNamespaces: true } }, credentials: [USER, password], stop: async () => {} };
  },
};

/** Runs run.sh, echoing its output, and returns its "N passed, N failed" counts. */
function runSuite(name, url, credentials) {
  return new Promise((resolveRun, reject) => {
    const args = [url, `${USER}/${name}`, ...(credentials ?? [])];
    const child = spawn(runSh, args, { env: { ...process.env, OCI_AUTOMATIC_CROSSMOUNT: '1' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      const m = /(\d+) passed, (\d+) failed\s*$/.exec(output);
      resolveRun({ code, passed: m ? Number(m[1]) : 0, failed: m ? Number(m[2]) : 1 });
    });
  });
}

const names = process.argv.slice(2);
for (const n of names) if (!(n in SETUPS)) die(`unknown setup ${JSON.stringify(n)}; choose from ${Object.keys(SETUPS).join(', ')}`);

const results = [];
for (const name of names.length > 0 ? names : Object.keys(SETUPS)) {
  process.stdout.write(`\n== conformance: ${name} (${process.version})\n`);
  const scratch = await makeScratchDir(`conformance-${name}`);
  let setup;
  let berth;
  try {
    setup = await SETUPS[name](scratch.path);
    berth = await startBerthProcess({ dataDir: scratch.path, config: setup.config });
    results.push({ name, ...(await runSuite(name, berth.url, setup.credentials)) });
  } catch (err) {
    process.stdout.write(`${err instanceof Error ? err.message : String(err)}\n${berth?.output() ?? ''}\n`);
    results.push({ name, code: 1, passed: 0, failed: 1 });
  } finally {
    await berth?.stop();
    await setup?.stop();
    await scratch.remove();
  }
}

process.stdout.write('\n== conformance summary\n');
for (const r of results) process.stdout.write(`  ${r.name.padEnd(12)} ${r.passed} passed, ${r.failed} failed\n`);
process.exit(results.every((r) => r.code === 0 && r.failed === 0) ? 0 : 1);
