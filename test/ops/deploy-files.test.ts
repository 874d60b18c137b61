import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { parse as parseYaml } from 'yaml';
import { configCheck } from '../../server/config-check.js';
import { loadConfig } from '../../server/config.js';
import { withGeneratedTable } from '../../server/config-docs.js';
import { Metrics } from '../../server/operations/metrics.js';
import { healthRoutes } from '../../server/routes/health.js';

/** A server with the real health routes; `ready` decides /readyz. */
async function healthServer(ready: boolean): Promise<{ port: number; close: () => Promise<void> }> {
  const app = Fastify({ logger: false });
  await app.register(healthRoutes, { checks: { storage: async () => (ready ? undefined : Promise.reject(new Error('down'))) } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(address && typeof address === 'object');
  return { port: address.port, close: () => app.close() };
}

/** Runs a container healthcheck's `node -e` script here, as the container would (asynchronously: the server is in this process). */
function runNodeCheck(args: string[], env: Record<string, string> = {}): Promise<number | null> {
  assert.equal(args[0], 'node');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args.slice(1), { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore', timeout: 10_000 });
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
}

// Compiled to dist/test/ops/, three levels below the repository root.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(`${root}${path}`, 'utf8');

/** ${VAR:-default} as compose resolves it with nothing set in the environment or .env. */
function composeDefaults(value: string): string {
  return value.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1').replace(/\$\$/g, '$');
}

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
}

describe('docker-compose.yml', () => {
  const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
  const { berth, redis, minio } = compose.services;

  it('configures Berth only through BERTH_* variables the schema accepts, for s3 + redis', () => {
    assert.ok(berth?.environment);
    const env = Object.fromEntries(Object.entries(berth.environment).map(([k, v]) => [k, composeDefaults(String(v))]));
    const config = loadConfig({ env });
    assert.equal(config.storage.driver, 's3');
    assert.equal(config.storage.s3?.endpoint, 'http://minio:9000');
    assert.equal(config.metadata.store, 'redis');
    assert.equal(config.metadata.redis?.url, 'redis://redis:6379');
  });

  it('runs Redis with append-only persistence on a volume', () => {
    assert.ok(redis);
    const command = Array.isArray(redis.command) ? redis.command.join(' ') : String(redis.command);
    assert.match(command, /--appendonly yes/);
    assert.ok(redis.volumes?.some((v) => v.endsWith(':/data')));
  });

  it('pins the S3-compatible store and its client to quay.io release tags', () => {
    assert.match(String(minio?.image), /^quay\.io\/minio\/minio:RELEASE\.\d{4}-/);
    assert.match(String(compose.services['create-bucket']?.image), /^quay\.io\/minio\/mc:RELEASE\.\d{4}-/);
  });

  it('gives every long-running service a healthcheck and starts Berth after its dependencies', () => {
    for (const name of ['berth', 'redis', 'minio']) assert.ok(compose.services[name]?.healthcheck, `${name} has a healthcheck`);
    assert.deepEqual(berth?.depends_on, {
      redis: { condition: 'service_healthy' },
      minio: { condition: 'service_healthy' },
      'create-bucket': { condition: 'service_completed_successfully' },
    });
    assert.deepEqual(Object.keys(compose.volumes).sort(), ['berth-data', 'minio-data', 'redis-data']);
  });

  it("Berth's healthcheck command passes when /readyz does and fails when it does not", async () => {
    const test = berth?.healthcheck?.test ?? [];
    assert.equal(test[0], 'CMD');
    for (const ready of [true, false]) {
      const server = await healthServer(ready);
      try {
        const args = test.slice(1).map((a) => a.replace('127.0.0.1:5000', `127.0.0.1:${server.port}`));
        assert.equal(await runNodeCheck(args), ready ? 0 : 1);
      } finally {
        await server.close();
      }
    }
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  it('builds in a separate stage and runs Node 24 as a non-root user with a healthcheck', () => {
    assert.match(dockerfile, /^ARG NODE_IMAGE=node:24-/m);
    assert.equal(dockerfile.match(/^FROM /gm)?.length, 2);
    assert.match(dockerfile, /^RUN npm ci /m);
    assert.match(dockerfile, /^USER berth:berth$/m);
    assert.match(dockerfile, /^EXPOSE 5000$/m);
    assert.match(dockerfile, /^VOLUME \["\/data"\]$/m);
    assert.match(dockerfile, /^HEALTHCHECK .*\n\s+CMD \["node", "-e", "fetch\(/m);
  });

  it('has a HEALTHCHECK command that passes against /healthz and fails when nothing listens', async () => {
    const cmd = /^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    assert.ok(cmd, 'HEALTHCHECK CMD in exec form');
    const args = JSON.parse(cmd) as string[];
    const server = await healthServer(true);
    const port = String(server.port);
    try {
      assert.equal(await runNodeCheck(args, { BERTH_HTTP_PORT: port }), 0);
      assert.equal(await runNodeCheck(args, { HEALTHCHECK_URL: `http://127.0.0.1:${port}/healthz` }), 0);
    } finally {
      await server.close();
    }
    assert.equal(await runNodeCheck(args, { BERTH_HTTP_PORT: port }), 1);
  });

  it('keeps build context small', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['node_modules', 'dist', '.git', 'data']) assert.ok(ignored.includes(entry), entry);
  });
});

describe('deploy/', () => {
  it('the example configuration passes `berth config check`', () => {
    assert.deepEqual(configCheck(`${root}deploy/berth.example.yaml`), { ok: true, problems: [] });
  });

  it('the Grafana dashboard only uses metrics Berth exports', async () => {
    const dashboard = JSON.parse(read('deploy/grafana-dashboard.json')) as { panels: { targets?: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
    assert.ok(exprs.length > 10);
    const exported = await new Metrics().exposition();
    const typed = new Set([...exported.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:berth|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!)));
    for (const name of used) {
      const base = name.replace(/_(bucket|count|sum)$/, '');
      assert.ok(typed.has(name) || typed.has(base), `${name} is not exported`);
    }
    for (const needed of [
      'berth_http_request_duration_seconds',
      'berth_pushes_total',
      'berth_storage_operation_duration_seconds',
      'berth_auth_failures_total',
    ]) {
      assert.ok(
        [...used].some((u) => u.startsWith(needed)),
        `dashboard shows ${needed}`,
      );
    }
  });
});

describe('docs/configuration.md', () => {
  it('has an up-to-date table of every key (regenerate: npm run build && node scripts/config-docs.mjs)', () => {
    const doc = read('docs/configuration.md');
    assert.equal(withGeneratedTable(doc), doc);
  });
});
