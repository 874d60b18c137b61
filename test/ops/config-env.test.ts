import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { configCheck } from '../../server/config-check.js';
import { ConfigError, configEnvVars, loadConfig, parseConfig } from '../../server/config.js';

const scratch = mkdtempSync(join(tmpdir(), 'berth-config-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function writeYaml(name: string, text: string): string {
  const file = join(scratch, name);
  writeFileSync(file, text);
  return file;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('config defaults and new sections', () => {
  it('fills metrics, audit and log defaults', () => {
    const config = parseConfig({});
    assert.deepEqual(config.metrics, { enabled: true, path: '/metrics', maxRepositoryLabels: 200 });
    assert.deepEqual(config.audit, { enabled: true, output: 'stdout' });
    assert.equal(config.log.access, true);
  });

  it('refuses a metrics port equal to the registry port', () => {
    const problems = problemsOf(() => parseConfig({ http: { port: 6000 }, metrics: { port: 6000 } }));
    assert.deepEqual(problems, ['metrics.port: must differ from http.port (leave it unset to serve metrics on http.port)']);
  });

  it("requires storage.s3 when the driver is 's3'", () => {
    const problems = problemsOf(() => parseConfig({ storage: { driver: 's3' } }));
    assert.deepEqual(problems, ["storage.s3: required when storage.driver is 's3'"]);
  });
});

describe('environment overrides', () => {
  it('maps BERTH_<SECTION>_<KEY> onto nested keys with their types', () => {
    const config = loadConfig({
      env: {
        BERTH_HTTP_PORT: '7000',
        BERTH_HTTP_TRUST_PROXY: 'true',
        BERTH_HTTP_SHUTDOWN_TIMEOUT_SECONDS: '5',
        BERTH_STORAGE_DRIVER: 'memory',
        BERTH_METADATA_STORE: 'redis',
        BERTH_METADATA_REDIS_URL: 'redis://cache:6380',
        BERTH_LOG_LEVEL: 'warn',
        BERTH_READ_ONLY: 'yes',
        BERTH_METRICS_TOKEN: 's3cret',
        BERTH_HTTP_TLS_CERT_FILE: '/certs/tls.crt',
        BERTH_HTTP_TLS_KEY_FILE: '/certs/tls.key',
      },
    });
    assert.equal(config.http.port, 7000);
    assert.equal(config.http.trustProxy, true);
    assert.equal(config.http.shutdownTimeoutSeconds, 5);
    assert.equal(config.storage.driver, 'memory');
    assert.equal(config.metadata.store, 'redis');
    assert.equal(config.metadata.redis?.url, 'redis://cache:6380');
    assert.equal(config.log.level, 'warn');
    assert.equal(config.readOnly, true);
    assert.equal(config.metrics.token, 's3cret');
    assert.deepEqual(config.http.tls, { certFile: '/certs/tls.crt', keyFile: '/certs/tls.key' });
  });

  it('lets the environment win over the file, and BERTH_HTTP_PORT over PORT', () => {
    const file = writeYaml('base.yaml', 'http:\n  port: 5001\n  host: 127.0.0.1\nlog:\n  level: debug\n');
    const config = loadConfig({ file, env: { PORT: '5002', BERTH_HTTP_PORT: '5003', BERTH_LOG_LEVEL: 'error' } });
    assert.equal(config.http.port, 5003);
    assert.equal(config.http.host, '127.0.0.1');
    assert.equal(config.log.level, 'error');
    assert.equal(loadConfig({ file, env: { PORT: '5002' } }).http.port, 5002);
  });

  it('keeps the BERTH_DATA_DIR and BERTH_CONFIG short-hands and ignores BERTH_TEST_*', () => {
    const file = writeYaml('dir.yaml', 'readOnly: true\n');
    const config = loadConfig({ env: { BERTH_CONFIG: file, BERTH_DATA_DIR: '/srv/berth', BERTH_TEST_CONCURRENCY: '4' } });
    assert.equal(config.dataDir, '/srv/berth');
    assert.equal(config.readOnly, true);
  });

  it('names an unknown BERTH_ variable', () => {
    const problems = problemsOf(() => loadConfig({ env: { BERTH_HTTP_PROT: '1', BERTH_LOG_LEVEL: 'info' } }));
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^BERTH_HTTP_PROT: not a configuration variable/);
  });

  it('names the variable when its value has the wrong type', () => {
    const problems = problemsOf(() => loadConfig({ env: { BERTH_HTTP_PORT: 'eighty', BERTH_READ_ONLY: 'maybe', BERTH_STORAGE_DRIVER: 'tape' } }));
    assert.deepEqual(problems.sort(), [
      'BERTH_HTTP_PORT: expected a number, got "eighty"',
      'BERTH_READ_ONLY: expected true or false, got "maybe"',
      "BERTH_STORAGE_DRIVER: expected one of 'filesystem', 's3', 'memory', got \"tape\"",
    ]);
  });

  it('reports schema limits with the key and the variable that set it', () => {
    const problems = problemsOf(() => loadConfig({ env: { BERTH_HTTP_PORT: '70000' } }));
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^http\.port: .*\(from BERTH_HTTP_PORT\)$/);
  });

  it('gives every key a distinct variable name', () => {
    const vars = configEnvVars();
    assert.equal(vars.get('BERTH_METADATA_REDIS_URL')?.path.join('.'), 'metadata.redis.url');
    assert.equal(vars.get('BERTH_DATA_DIR')?.path.join('.'), 'dataDir');
    assert.equal(vars.get('BERTH_METRICS_PORT')?.kind, 'number');
    assert.equal(vars.get('BERTH_DELETE_ENABLED')?.kind, 'boolean');
  });
});

describe('configCheck', () => {
  it('accepts a valid file', () => {
    const file = writeYaml('ok.yaml', 'http:\n  port: 5000\nmetrics:\n  port: 9100\naudit:\n  output: /var/log/berth/audit.log\n');
    assert.deepEqual(configCheck(file), { ok: true, problems: [] });
  });

  it('lists every problem, each naming its key', () => {
    const file = writeYaml('bad.yaml', 'http:\n  port: "80"\n  hots: 0.0.0.0\nstorage:\n  driver: tape\nlogs: {}\n');
    const result = configCheck(file);
    assert.equal(result.ok, false);
    assert.equal(result.problems.length, 4, result.problems.join('\n'));
    assert.ok(result.problems.some((p) => p === "unknown key 'http.hots'"));
    assert.ok(result.problems.some((p) => p === "unknown key 'logs'"));
    assert.ok(result.problems.some((p) => p.startsWith('http.port: ')));
    assert.ok(result.problems.some((p) => p.startsWith('storage.driver: ')));
  });

  it('judges the file alone unless given an environment', () => {
    const file = writeYaml('plain.yaml', '{}\n');
    assert.equal(configCheck(file).ok, true);
    assert.equal(configCheck(file, { env: { BERTH_NOPE: '1' } }).ok, false);
  });

  it('reads event endpoint secrets as serve would, naming the endpoint and never the value', () => {
    const secret = join(scratch, 'hook-secret');
    writeFileSync(secret, 'topsecret-value\n');
    const yaml = (source: string) => `events:\n  endpoints:\n    - name: ci\n      url: http://127.0.0.1:9/hook\n      ${source}\n`;
    assert.deepEqual(configCheck(writeYaml('hook-file.yaml', yaml(`secretFile: ${secret}`))), { ok: true, problems: [] });

    const missing = configCheck(writeYaml('hook-missing.yaml', yaml(`secretFile: ${join(scratch, 'nope')}`)));
    assert.equal(missing.ok, false);
    assert.match(missing.problems.join('\n'), /events\.endpoints\.0\.secretFile \(endpoint "ci"\): cannot read .*nope: no such file/);

    const file = writeYaml('hook-env.yaml', yaml('secretEnv: HOOK_SECRET'));
    assert.match(configCheck(file, { env: {} }).problems.join('\n'), /environment variable HOOK_SECRET is not set/);
    const set = configCheck(file, { env: { HOOK_SECRET: 'topsecret-value' } });
    assert.deepEqual(set, { ok: true, problems: [] });

    const off = configCheck(
      writeYaml('hook-off.yaml', `events:\n  enabled: false\n  endpoints:\n    - name: ci\n      url: http://127.0.0.1:9/hook\n      secretEnv: HOOK_SECRET\n`),
    );
    assert.deepEqual(off, { ok: true, problems: [] }, 'serve does not read endpoints when events are off');
    assert.ok(!JSON.stringify(missing).includes('topsecret'));
  });

  it('explains an unreadable file and invalid YAML', () => {
    assert.match(configCheck(join(scratch, 'missing.yaml')).problems[0]!, /^cannot read config file/);
    assert.match(configCheck(writeYaml('broken.yaml', 'http: [\n')).problems[0]!, /is not valid YAML/);
  });
});

describe('berth config check (the CLI)', () => {
  const bin = fileURLToPath(new URL('../../../bin/berth.js', import.meta.url));
  const check = (file: string, env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [bin, 'config', 'check', file], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } });

  it('prints ok for a valid file, as docs/configuration.md says', () => {
    const run = check(writeYaml('cli-ok.yaml', 'http:\n  port: 5000\n'));
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, 'ok\n');
  });

  it('prints one line per problem and exits non-zero', () => {
    const run = check(writeYaml('cli-bad.yaml', 'http:\n  hots: x\nlogs: {}\n'));
    assert.equal(run.status, 1);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr.split('\n').filter((l) => l.startsWith('  - ')).length, 2, run.stderr);
  });

  it('applies the BERTH_* variables of its environment, as berth serve does', () => {
    const run = check(writeYaml('cli-env.yaml', '{}\n'), { BERTH_HTTP_PORT: 'eighty' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /http\.port|BERTH_HTTP_PORT/);
  });
});
