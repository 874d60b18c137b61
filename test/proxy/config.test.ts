import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { configCheck } from '../../server/config-check.js';
import { ConfigError, parseConfig } from '../../server/config.js';
import { ProxyNamespaces } from '../../server/registry/proxy/namespaces.js';
import { resolveUpstreams } from '../../server/registry/proxy/upstreams.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { makeUpstream } from './helpers.js';

function problemsOf(proxy: unknown): string[] {
  try {
    parseConfig({ proxy });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

const hub = { namespace: 'dockerhub', urls: ['https://registry-1.docker.io'] };

describe('proxy config', () => {
  let scratch: ScratchDir;
  before(async () => {
    scratch = await makeScratchDir('proxy-config');
  });
  after(() => scratch.remove());

  it('has defaults and takes a full upstream', () => {
    assert.deepEqual(parseConfig({}).proxy, { upstreams: [], maxFillBytes: 10 * 1024 ** 3 });
    const [upstream] = parseConfig({
      proxy: { upstreams: [{ ...hub, hosts: ['docker.io'], libraryPrefix: true, username: 'robot', passwordFile: '/run/secrets/hub' }] },
    }).proxy.upstreams;
    assert.equal(upstream?.tagTtlSeconds, 300);
    assert.equal(upstream?.maxConcurrent, 16);
    assert.equal(upstream?.requestsPerSecond, 0);
    assert.equal(upstream?.maxWaitSeconds, 30);
  });

  it('names each bad key', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ upstreams: [hub, hub] }, /proxy\.upstreams\.1\.namespace: namespace "dockerhub" is used twice/],
      [{ upstreams: [{ ...hub, namespace: 'docker/hub' }] }, /proxy\.upstreams\.0\.namespace: must be one path segment/],
      [{ upstreams: [{ ...hub, namespace: 'Hub' }] }, /proxy\.upstreams\.0\.namespace/],
      [{ upstreams: [{ ...hub, urls: ['ftp://x.example'] }] }, /proxy\.upstreams\.0\.urls\.0: must be an http or https URL/],
      [{ upstreams: [{ ...hub, urls: ['https://u:p@x.example'] }] }, /proxy\.upstreams\.0\.urls\.0: must not carry credentials/],
      [{ upstreams: [{ ...hub, urls: [] }] }, /proxy\.upstreams\.0\.urls/],
      [{ upstreams: [{ ...hub, username: 'u', passwordFile: '/a', passwordEnv: 'B' }] }, /passwordEnv: give passwordFile or passwordEnv, not both/],
      [{ upstreams: [{ ...hub, passwordEnv: 'B' }] }, /proxy\.upstreams\.0\.passwordEnv: only used with username/],
      [{ upstreams: [{ ...hub, password: 'inline' }] }, /unknown key 'proxy\.upstreams\.0\.password'/],
      [{ upstreams: [{ ...hub, caFile: '/ca.pem', urls: ['http://x.example'] }] }, /caFile: only used for https URLs/],
      [
        {
          upstreams: [
            { ...hub, hosts: ['docker.io'] },
            { namespace: 'mirror', urls: ['https://m.example'], hosts: ['Docker.io'] },
          ],
        },
        /proxy\.upstreams\.1\.hosts\.0: host Docker\.io is already given for namespace "dockerhub"/,
      ],
      [{ upstreams: [{ ...hub, maxConcurrent: 0 }] }, /maxConcurrent/],
      [{ maxFillBytes: -1 }, /proxy\.maxFillBytes/],
    ];
    for (const [proxy, expected] of cases) {
      const problems = problemsOf(proxy);
      assert.ok(
        problems.some((p) => expected.test(p)),
        `${JSON.stringify(proxy)}: ${JSON.stringify(problems)}`,
      );
    }
  });

  it('resolves passwords from a file or the environment, kept out of logs', async () => {
    const file = join(scratch.path, 'hub-password');
    await writeFile(file, 's3cret-from-file\n');
    const proxy = parseConfig({
      proxy: {
        upstreams: [
          { ...hub, username: 'robot', passwordFile: file },
          { namespace: 'ghcr', urls: ['https://ghcr.io'], username: 'me', passwordEnv: 'GHCR_PW' },
        ],
      },
    }).proxy;
    const [a, b] = resolveUpstreams(proxy, { env: { GHCR_PW: 's3cret-from-env' } });
    assert.equal(a?.password, 's3cret-from-file');
    assert.equal(b?.password, 's3cret-from-env');
    for (const shown of [JSON.stringify([a, b]), inspect([a, b], { depth: 5 })]) assert.doesNotMatch(shown, /s3cret/);
  });

  it('reports every missing password file and variable at once, in berth config check too', async () => {
    const config = {
      proxy: {
        upstreams: [
          { ...hub, username: 'robot', passwordFile: join(scratch.path, 'missing') },
          { namespace: 'ghcr', urls: ['https://ghcr.io'], username: 'me', passwordEnv: 'GHCR_PW' },
          { namespace: 'quay', urls: ['https://quay.io'], caFile: join(scratch.path, 'no-ca.pem') },
        ],
      },
    };
    const expected = [
      /^proxy\.upstreams\.0\.passwordFile \(upstream "dockerhub"\): cannot read .*missing: no such file$/,
      /^proxy\.upstreams\.1\.passwordEnv \(upstream "ghcr"\): environment variable GHCR_PW is not set$/,
      /^proxy\.upstreams\.2\.caFile \(upstream "quay"\): cannot read .*no-ca\.pem: no such file$/,
    ];
    assert.throws(
      () => resolveUpstreams(parseConfig(config).proxy, { env: {} }),
      (err: unknown) => err instanceof ConfigError && err.problems.length === 3 && expected.every((re, i) => re.test(err.problems[i] ?? '')),
    );
    const file = join(scratch.path, 'berth.yaml');
    await writeFile(file, stringify(config));
    const checked = configCheck(file);
    assert.equal(checked.ok, false);
    assert.equal(checked.problems.length, 3);
    expected.forEach((re, i) => assert.match(checked.problems[i] ?? '', re));
    assert.equal(configCheck(file, { env: { GHCR_PW: 'x' } }).problems.length, 2);
  });
});

describe('proxy namespaces', () => {
  const hubUpstream = makeUpstream({ ...hub, namespace: 'dockerhub', hosts: ['docker.io', 'Registry-1.Docker.io'], libraryPrefix: true }).upstream;
  const ghcr = makeUpstream({ namespace: 'ghcr', urls: ['https://ghcr.io'], hosts: ['ghcr.io'] }).upstream;
  const namespaces = new ProxyNamespaces([hubUpstream, ghcr]);
  after(() => {
    hubUpstream.close();
    ghcr.close();
  });

  it('maps local repositories to their upstream and remote name', () => {
    assert.equal(namespaces.resolve('dockerhub/nginx')?.upstream, hubUpstream);
    assert.equal(namespaces.resolve('dockerhub/nginx')?.remoteRepo, 'library/nginx');
    assert.equal(namespaces.resolve('dockerhub/bitnami/redis')?.remoteRepo, 'bitnami/redis');
    assert.equal(namespaces.resolve('ghcr/nginx')?.remoteRepo, 'nginx', 'no library/ without libraryPrefix');
    assert.equal(namespaces.resolve('ghcr/org/tool/cli')?.remoteRepo, 'org/tool/cli');
    for (const local of ['dockerhub', 'dockerhub/', 'team/app', 'nginx', 'dockerhubx/nginx']) assert.equal(namespaces.resolve(local), undefined, local);
  });

  it("maps containerd's ?ns= host to its upstream", () => {
    assert.equal(namespaces.forHost('docker.io'), hubUpstream);
    assert.equal(namespaces.forHost('registry-1.docker.io'), hubUpstream);
    assert.equal(namespaces.forHost('GHCR.io'), ghcr);
    assert.equal(namespaces.forHost('quay.io'), undefined);
  });
});
